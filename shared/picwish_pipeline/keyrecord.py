"""A key's one record: written only by a job of the key's newest version (S3's own order of the uploads, read from
the versioned input bucket), under a per-key lock, after whatever an older version left under the key is cleared.
A job whose version was replaced meanwhile leaves a `superseded/` record instead and touches nothing else."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import records, storage
from .reasons import Reason
from .services import Services
from .uploads import SUPERSEDED, JobPath, UploadRef

logger = logging.getLogger(__name__)

NEWEST, REPLACED, DELETED = "newest", "superseded", "deleted"
LOCK_PREFIX = "record#"  # the lock's item in the task table, beside the executions' claims
LOCK_HOLD_S = 180.0  # longer than any step that holds it runs (finalize: 120 s): a holder that died frees it
LOCK_WAIT_S = 20.0
LOCK_RETRY_S = 0.25


class KeyBusy(Exception):
    """Another job of the same key is writing the key's record: the step is retried (the state machine's Retry,
    Lambda's async retries)."""


@dataclass(frozen=True)
class Standing:
    """Where an upload's version stands: the key's newest, replaced by `newest_version`, or deleted."""

    state: str
    newest_version: str | None = None


def standing(svc: Services, upload: UploadRef) -> Standing:
    """Read from S3 itself (strongly consistent): the key's current version is its newest upload."""
    try:
        head = svc.s3.head_object(Bucket=upload.bucket, Key=upload.key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in storage.NOT_FOUND:
            return Standing(DELETED)
        raise
    current = head.get("VersionId")
    if upload.version_id:
        return Standing(NEWEST if current == upload.version_id else REPLACED, current)
    # An unversioned bucket: the same bytes under the key are the same upload, as far as anyone can tell.
    etag = (head.get("ETag") or "").strip('"')
    return Standing(NEWEST if upload.etag in (None, etag) else REPLACED, current)


@contextlib.contextmanager
def key_lock(svc: Services, path: JobPath, owner: str) -> Iterator[None]:
    """Held while a job replaces the key's record and outputs; the same owner may take it again (a retried step)."""
    name = LOCK_PREFIX + path.relative
    deadline = svc.clock() + LOCK_WAIT_S
    while not _acquire(svc, name, owner):
        if svc.clock() >= deadline:
            raise KeyBusy(f"another job is writing the record of {path.relative}")
        svc.sleep(LOCK_RETRY_S)
    try:
        yield
    finally:
        _release(svc, name, owner)


def _acquire(svc: Services, name: str, owner: str) -> bool:
    now = svc.clock()
    item = {
        "execution": {"S": name},
        "lock_owner": {"S": owner},
        "held_until": {"N": repr(now + LOCK_HOLD_S)},
        "expires_at": {"N": str(int(now + LOCK_HOLD_S) + 3600)},
    }
    condition = "attribute_not_exists(execution) OR held_until < :now OR lock_owner = :me"
    return storage.put_task_item(svc, item, condition, {":now": {"N": repr(now)}, ":me": {"S": owner}})


def _release(svc: Services, name: str, owner: str) -> None:
    """A release that fails leaves the lock to expire (LOCK_HOLD_S): the next writer waits, nothing is lost."""
    try:
        svc.dynamodb.delete_item(
            TableName=svc.settings.tasks_table,
            Key={"execution": {"S": name}},
            ConditionExpression="lock_owner = :me",
            ExpressionAttributeValues={":me": {"S": owner}},
        )
    except ClientError as exc:
        logger.warning("record lock not released", extra={"key": name, "error": exc.response["Error"]["Code"]})


# What a job writes once it holds the lock and stands as the newest: (kind, record, output keys it wrote).
Writer = Callable[[], tuple[str, dict[str, Any], set[str]]]


def commit(svc: Services, path: JobPath, upload: UploadRef, owner: str, write: Writer) -> Standing:
    """Replace the key's record with the one `write` builds, if this upload is still the key's newest version.
    Both records go first (no record is half-replaced), outputs no longer named go after `write`, the record is
    written last: it is the commit marker readers wait for. A deleted upload gets its "object missing" record."""
    bucket = svc.settings.output_bucket
    with key_lock(svc, path, owner):
        found = standing(svc, upload)
        if found.state == REPLACED:
            return found
        for _kind, key in path.record_keys:
            svc.s3.delete_object(Bucket=bucket, Key=key)
        kept: set[str] = set()
        if found.state == DELETED:
            kind, record = "failed", deleted_record(svc, path, upload)
        else:
            kind, record, kept = write()
        for key in _outputs(svc, path):
            if key not in kept:
                svc.s3.delete_object(Bucket=bucket, Key=key)
        storage.put_json(svc.s3, bucket, dict(path.record_keys)[kind], record)
    return found


def _outputs(svc: Services, path: JobPath) -> list[str]:
    """The outputs directly under the key's result prefix (a longer key's own prefix below it is not ours)."""
    found: list[str] = []
    pages = svc.s3.get_paginator("list_objects_v2").paginate(
        Bucket=svc.settings.output_bucket, Prefix=path.result_prefix, Delimiter="/"
    )
    for page in pages:
        found.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"] != path.result_key)
    return found


def deleted_record(svc: Services, path: JobPath, upload: UploadRef) -> dict[str, Any]:
    error = {"message": "the upload was deleted before its job ended; nothing was written for it"}
    return records.failure(path, upload.to_dict(), reason=Reason.OBJECT_MISSING, error=error, clock=svc.clock)


def supersede(svc: Services, path: JobPath, upload: UploadRef, found: Standing, **facts: Any) -> str:
    """The `superseded/` record of a job whose version was replaced: what it was, what replaced it, and any task
    it paid for (`facts`). The key's own record is left to the newest version's job."""
    key = f"{SUPERSEDED}{path.relative}/{upload.identity or 'unversioned'}.json"
    record = {
        "outcome": "superseded",
        "operation": path.operation,
        "source": upload.to_dict(),
        "newest_version_id": found.newest_version,
        "recorded_at": records.iso(svc.clock()),
        **facts,
    }
    storage.put_json(svc.s3, svc.settings.output_bucket, key, record)
    return key
