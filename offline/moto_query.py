"""moto answers a DynamoDB Query by sorting every item of the table, then every item of the partition, and
comparing each sort key through its DynamoType: 12 ms a query per 1,000 items, so the slot table of a
2,000-upload drop (one partition, ~10,000 slots) took a quarter of a second a query and stalled the stack.
On AWS a Query costs what it returns. Here each partition keeps its sort keys in order (kept up to date by
moto's own put and delete), a table's own Query (no index, a comparison on the sort key) finds its items by
bisection, and moto's own code answers from those: the projection, limit, paging and filters stay moto's.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.dynamodb.models.table import Table

_LOCK = threading.RLock()  # a partition's order changes with its items, as one step

# Each condition as the run of sorted keys it selects: bisect_left / bisect_right of its bound(s).
_RUNS = {
    "EQ": ("left", "right"), "=": ("left", "right"),
    "GE": ("left", None), ">=": ("left", None),
    "GT": ("right", None), ">": ("right", None),
    "LE": (None, "right"), "<=": (None, "right"),
    "LT": (None, "left"), "<": (None, "left"),
    "BETWEEN": ("left", "right"),
}  # fmt: skip


@dataclass
class _SortedPartition:
    """One partition's sort keys in order: their values as moto compares them, and the keys themselves."""

    partition: dict
    values: list = field(default_factory=list)
    keys: list = field(default_factory=list)

    @classmethod
    def of(cls, partition: dict) -> _SortedPartition:
        pairs = sorted(((key.cast_value, key) for key in partition), key=lambda pair: pair[0])
        return cls(partition, [value for value, _ in pairs], [key for _, key in pairs])

    def add(self, key: Any) -> None:
        at = bisect.bisect_left(self.values, key.cast_value)
        self.values.insert(at, key.cast_value)
        self.keys.insert(at, key)

    def remove(self, key: Any) -> None:
        at = bisect.bisect_left(self.values, key.cast_value)
        del self.values[at], self.keys[at]

    def run(self, comparison: str, bounds: list[Any]) -> tuple[int, int]:
        low, high = _RUNS[comparison]
        bisects = {"left": bisect.bisect_left, "right": bisect.bisect_right}
        start = bisects[low](self.values, bounds[0]) if low else 0
        end = bisects[high](self.values, bounds[-1]) if high else len(self.values)
        return start, max(start, end)


def _sorted(table: Table, hash_key: Any) -> _SortedPartition | None:
    """The partition's order, rebuilt when the partition was replaced or written past the hooks (a restore)."""
    partition = table.items.get(hash_key)
    if partition is None:
        return None
    index = table.__dict__.setdefault("_sorted_partitions", {})
    known = index.get(hash_key)
    if known is None or known.partition is not partition or len(known.keys) != len(partition):
        index[hash_key] = known = _SortedPartition.of(partition)
    return known


def _matching(table: Table, hash_key: Any, comparison: str, range_objs: list[Any]) -> list[Any]:
    """The items whose sort key meets the condition, in order, with the item on either side of them: moto returns
    a LastEvaluatedKey when a further item exists past the limit, whether or not it matches."""
    order = _sorted(table, hash_key)
    if order is None:
        return []
    start, end = order.run(comparison, [obj.cast_value for obj in range_objs])
    if start == end:
        return []
    return [order.partition[key] for key in order.keys[max(start - 1, 0) : end + 1]]


def _narrow(original):
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Table, *args: Any, **kwargs: Any):
        call = signature.bind(self, *args, **kwargs)
        asked = call.arguments
        # Anything else (an index, legacy KeyConditions filters, a multi-attribute key) is moto's alone.
        simple = (
            asked.get("index_name") is None
            and self.range_key_attr
            and asked["range_comparison"] in _RUNS
            and not asked.get("filter_kwargs")
            and len(asked.get("range_key_conditions") or ()) <= 1
        )
        if simple:
            with _LOCK:
                asked["self"] = _Narrowed(
                    self, _matching(self, asked["hash_key"], asked["range_comparison"], asked["range_objs"])
                )
        return original(*call.args, **call.kwargs)

    query._narrowed = True
    return query


class _Narrowed:
    """The table as moto's query sees it, holding only the items it may return."""

    def __init__(self, table: Table, items: list[Any]) -> None:
        self._table = table
        self._items = items

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        return self._items


def _indexed(table: Table, hash_key: Any) -> _SortedPartition | None:
    index = table.__dict__.get("_sorted_partitions", {}).get(hash_key)
    return index if index is not None and index.partition is table.items.get(hash_key) else None


def _tracking(put_item, delete_item):
    @functools.wraps(put_item)
    def put(self: Table, *args: Any, **kwargs: Any):
        with _LOCK:
            item = put_item(self, *args, **kwargs)
            order = _indexed(self, item.hash_key) if item.range_key is not None else None
            if order is not None and len(order.keys) < len(order.partition):
                order.add(item.range_key)
            return item

    @functools.wraps(delete_item)
    def delete(self: Table, hash_key: Any, range_key: Any):
        with _LOCK:
            item = delete_item(self, hash_key, range_key)
            order = _indexed(self, hash_key) if item is not None and range_key is not None else None
            if order is not None and len(order.keys) > len(order.partition):
                order.remove(range_key)
            return item

    return put, delete


def narrow_table_queries() -> None:
    if getattr(Table.query, "_narrowed", False):
        return
    Table.put_item, Table.delete_item = _tracking(Table.put_item, Table.delete_item)  # type: ignore[method-assign]
    Table.query = _narrow(Table.query)  # type: ignore[method-assign]
