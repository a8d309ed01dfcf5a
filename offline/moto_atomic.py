"""moto gaps in atomicity that the pipeline's guarantees rest on, closed by serializing the operations involved:

- DynamoDB conditional writes are not atomic across threads (two concurrent `attribute_not_exists` puts can both
  succeed), while DynamoDB guarantees they are; a query that iterates a table while another thread writes fails
  with "dictionary changed size during iteration"; and a GetItem during an UpdateItem that creates the item sees
  it without the attribute being added (a create step failed on it in the faulty benchmark). Writes and reads
  are serialized.
- Step Functions' StartExecution checks the name, then adds the execution: two concurrent starts with one name
  both ran, where AWS starts one and returns it to the other (the benchmark caught it when an S3 event
  delivered twice reached two submits at once: one upload paid twice). Starts are serialized.
- S3: overwriting an object closed the old version's buffer at once, so a GET that had just found it failed
  with "I/O operation on closed file" (a record rewritten while a test read it); S3 serves such a read. The old
  buffer now closes when the last reader lets go of it. A conditional PUT (If-Match, If-None-Match) compared
  the ETag, then stored: two redrives claiming one failure record with If-Match could both win. Conditional PUTs
  are serialized.
"""

from __future__ import annotations

import functools
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

_DYNAMODB_LOCK = threading.RLock()
_DYNAMODB_SERIALIZED = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)
_STEPFUNCTIONS_LOCK = threading.RLock()
_S3_CONDITIONAL_LOCK = threading.RLock()


def make_moto_atomic() -> None:
    for name in _DYNAMODB_SERIALIZED:
        _serialize(DynamoDBBackend, name, _DYNAMODB_LOCK)
    for backend in (StepFunctionBackend, StepFunctionsParserBackend):
        _serialize(backend, "start_execution", _STEPFUNCTIONS_LOCK)
    _close_s3_buffers_when_unreferenced()
    _serialize_conditional_puts()


def _serialize_conditional_puts() -> None:
    original = S3Response.__dict__["put_object"]
    if getattr(original, "_atomic", False):
        return

    @functools.wraps(original)
    def put_object(self, *args, **kwargs):
        if self.headers.get("If-Match") is None and self.headers.get("If-None-Match") is None:
            return original(self, *args, **kwargs)
        with _S3_CONDITIONAL_LOCK:
            return original(self, *args, **kwargs)

    put_object._atomic = True
    S3Response.put_object = put_object


def _close_s3_buffers_when_unreferenced() -> None:
    original = FakeKey.dispose
    if getattr(original, "_deferred", False):
        return

    @functools.wraps(original)
    def dispose(self, garbage: bool = False) -> None:
        if garbage:  # from __del__: nobody holds the object any more
            original(self, garbage=True)
        else:
            self.disposed = True

    dispose._deferred = True
    FakeKey.dispose = dispose


def _serialize(cls: type, name: str, lock: threading.RLock) -> None:
    original = cls.__dict__.get(name)
    if original is None or getattr(original, "_atomic", False):
        return

    @functools.wraps(original)
    def locked(self, *args, __original=original, **kwargs):
        with lock:
            return __original(self, *args, **kwargs)

    locked._atomic = True
    setattr(cls, name, locked)
