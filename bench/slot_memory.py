"""The slot table in memory, for the replay: exactly the DynamoDB requests `SlotLimiter` makes (conditional puts,
its two key-condition queries, conditional updates, a get), on sorted keys. moto reads a whole partition for every
query, which made a replay of a 100,000-upload drop take hours; `tests/functional/test_simulate.py` runs the same
requests on both and compares every answer. Any other request is refused, never guessed at."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

Key = tuple[str, int]


class MemorySlotTable:
    """One table, keyed (pk, numeric sk), with a count of the requests made of it by name."""

    def __init__(self) -> None:
        self.items: dict[Key, dict[str, Any]] = {}
        self.sort_keys: dict[str, list[int]] = {}
        self.requests: Counter[str] = Counter()

    def get_item(self, TableName: str, Key: dict, ConsistentRead: bool = False) -> dict:
        self.requests["GetItem"] += 1
        found = self.items.get(_key(Key))
        return {"Item": dict(found)} if found is not None else {}

    def put_item(self, TableName: str, Item: dict, ConditionExpression: str) -> dict:
        self.requests["PutItem"] += 1
        key = _key(Item)
        held = self.items.get(key)
        if ConditionExpression == "attribute_not_exists(sk)":
            holds = held is None
        elif ConditionExpression == "attribute_exists(spare) AND attribute_not_exists(called_at)":
            holds = held is not None and "spare" in held and "called_at" not in held
        else:
            raise NotImplementedError(ConditionExpression)
        if not holds:
            raise _condition_failed("PutItem")
        if held is None:
            bisect.insort(self.sort_keys.setdefault(key[0], []), key[1])
        self.items[key] = dict(Item)
        return {}

    def update_item(
        self,
        TableName: str,
        Key: dict,
        UpdateExpression: str,
        ExpressionAttributeValues: dict,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict | None = None,
    ) -> dict:
        self.requests["UpdateItem"] += 1
        key = _key(Key)
        held = self.items.get(key)
        if not _holds(ConditionExpression, held, ExpressionAttributeValues, ExpressionAttributeNames or {}):
            raise _condition_failed("UpdateItem")
        assignment = UpdateExpression.removeprefix("SET ")
        name, value = (part.strip() for part in assignment.split("="))
        if "," in assignment or not UpdateExpression.startswith("SET "):
            raise NotImplementedError(UpdateExpression)
        if held is None:
            held = {"pk": Key["pk"], "sk": Key["sk"]}
            self.items[key] = held
            bisect.insort(self.sort_keys.setdefault(key[0], []), key[1])
        held[(ExpressionAttributeNames or {}).get(name, name)] = ExpressionAttributeValues[value]
        return {}

    def query(
        self,
        TableName: str,
        KeyConditionExpression: str,
        ExpressionAttributeValues: dict,
        ProjectionExpression: str,
        Limit: int | None = None,
        ConsistentRead: bool = False,
    ) -> dict:
        self.requests["Query"] += 1
        values = {name: value.get("N", value.get("S")) for name, value in ExpressionAttributeValues.items()}
        keys = self.sort_keys.get(str(values[":p"]), [])
        if KeyConditionExpression == "pk = :p AND sk >= :s":
            first = bisect.bisect_left(keys, int(values[":s"]))
            chosen = keys[first : first + Limit] if Limit else keys[first:]
        elif KeyConditionExpression == "pk = :p AND sk BETWEEN :a AND :b":
            chosen = keys[bisect.bisect_left(keys, int(values[":a"])) : bisect.bisect_right(keys, int(values[":b"]))]
        else:
            raise NotImplementedError(KeyConditionExpression)
        wanted = [name.strip() for name in ProjectionExpression.split(",")]
        items = [self.items[(str(values[":p"]), sk)] for sk in chosen]
        return {"Items": [{n: item[n] for n in wanted if n in item} for item in items], "Count": len(items)}


def _key(item: dict) -> Key:
    return item["pk"]["S"], int(item["sk"]["N"])


def _holds(condition: str | None, held: dict | None, values: dict, names: dict) -> bool:
    if condition is None:
        return True
    for name, attribute in names.items():
        condition = condition.replace(name, attribute)
    if condition == "attribute_exists(spare)":
        return held is not None and "spare" in held
    for lane in ("lane_at", "backfill_at"):
        if condition == f"attribute_not_exists({lane})":
            return held is None or lane not in held
        if condition == f"{lane} = :was":
            return held is not None and lane in held and float(held[lane]["N"]) == float(values[":was"]["N"])
    raise NotImplementedError(condition)


def _condition_failed(operation: str) -> ClientError:
    error = {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
    return ClientError({"Error": error}, operation)
