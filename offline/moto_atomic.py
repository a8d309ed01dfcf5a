"""A moto gap that matters to the QPS limiter: DynamoDB conditional writes in moto are not atomic across threads
(two concurrent `attribute_not_exists` puts can both succeed), while DynamoDB guarantees they are, and a query
that iterates a table while another thread writes fails with "dictionary changed size during iteration".
Serializing moto's writes, queries and scans restores DynamoDB's guarantees for the local stack and the tests."""

from __future__ import annotations

import functools
import threading

from moto.dynamodb.models import DynamoDBBackend

_WRITE_LOCK = threading.RLock()
_SERIALIZED = ("put_item", "update_item", "delete_item", "transact_write_items", "query", "scan")


def make_dynamodb_writes_atomic() -> None:
    for name in _SERIALIZED:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_atomic", False):
            continue

        @functools.wraps(original)
        def locked(self, *args, __original=original, **kwargs):
            with _WRITE_LOCK:
                return __original(self, *args, **kwargs)

        locked._atomic = True
        setattr(DynamoDBBackend, name, locked)
