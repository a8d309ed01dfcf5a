"""A moto gap that matters to the QPS limiter: DynamoDB conditional writes in moto are not atomic across threads
(two concurrent `attribute_not_exists` puts can both succeed), while DynamoDB guarantees they are. Serializing
moto's write operations restores that guarantee for the local stack and the tests."""

from __future__ import annotations

import functools
import threading

from moto.dynamodb.models import DynamoDBBackend

_WRITE_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def make_dynamodb_writes_atomic() -> None:
    for name in _WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_atomic", False):
            continue

        @functools.wraps(original)
        def locked(self, *args, __original=original, **kwargs):
            with _WRITE_LOCK:
                return __original(self, *args, **kwargs)

        locked._atomic = True
        setattr(DynamoDBBackend, name, locked)
