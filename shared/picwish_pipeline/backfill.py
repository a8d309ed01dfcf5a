"""Backfill: what to do with an image already under `incoming/` — start its job as its upload would have, run it
again (a failed job, or `reprocess`), or skip it and say why — decided from the key's newest version and its one
record. The backfill machine's item step and `picwish-ops backfill --dry-run` decide with the same function, so
the dry run's bill is what the run pays.

A job backfill starts is an upload's job: the same execution name as the upload's own event gives it (a key
whose event is still on its way, or owed a retry after submit's internal error, starts once), the same hand-over
and records, in the create lane a backfill keeps. A job run again gets an `attempt` in its name, from the record
it replaces: two backfills reading the same record start it once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from picwish_visual.catalog import OPERATIONS, get_operation

from . import tally
from .payloads import BACKFILL, StepInput
from .reasons import REFUSED, Reason
from .services import Services
from .storage import NOT_FOUND
from .submit import judge_upload
from .uploads import JobPath, UploadRef, parse_job_path

START, RERUN, SKIP = "start", "rerun", "skip"


@dataclass(frozen=True)
class Decision:
    """One key's fate: `action` (start, rerun, skip), why, and the version it concerns."""

    key: str
    action: str
    why: str
    operation: str | None = None
    version_id: str | None = None
    etag: str | None = None
    attempt: str = ""

    @property
    def credits(self) -> int | None:
        """What its task costs, when it makes one and the docs give the operation's price."""
        if self.action == SKIP or self.operation not in OPERATIONS:
            return None
        return get_operation(str(self.operation)).credits

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "action": self.action, "why": self.why, "operation": self.operation}


def decide(s3: Any, input_bucket: str, output_bucket: str, key: str, *, reprocess: bool = False) -> Decision:
    """What a backfill does with `key`, read from S3 (strongly consistent) at this moment."""
    path = parse_job_path(key)
    if path is None:
        return Decision(key, SKIP, "not an upload (uploads are incoming/<operation>/<file>)")
    try:
        head = s3.head_object(Bucket=input_bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return Decision(key, SKIP, "deleted")
        raise
    version, etag = head.get("VersionId"), (head.get("ETag") or "").strip('"') or None
    found = Decision(key, START, "never processed", path.operation, version, etag)
    if not path.known_operation:
        return _as(found, START, "unknown operation (it gets its failure record)")
    record = _record(s3, output_bucket, path)
    if record is None:
        return found
    if not _same_upload(record.get("source") or {}, version, etag):
        return _as(found, START, "its newest upload has no record yet")
    if record.get("outcome") == "succeeded":
        if not reprocess:
            return _as(found, SKIP, "has a result")
        return _as(found, RERUN, "reprocess", attempt=_attempt(record))
    why = str(record.get("reason") or "unknown")
    if why == Reason.INTERNAL_ERROR:
        # Submit never started its job; its event is still owed a retry or a redrive. Under the upload's own
        # name, whichever of the two comes second finds the job started.
        return _as(found, START, "its job never started (internal error)")
    if why in REFUSED:
        return _as(found, SKIP, f"refused: {why} (fix the upload and upload it again)")
    if record.get("redriven_at"):
        return _as(found, SKIP, "being redriven")
    return _as(found, RERUN, f"failed before: {why}", attempt=_attempt(record))


def _same_upload(source: dict[str, Any], version: str | None, etag: str | None) -> bool:
    """Whether a record is of the key's current object: its version, or in an unversioned bucket its bytes."""
    if version:
        return source.get("version_id") == version
    return source.get("etag") == etag


def _as(found: Decision, action: str, why: str, *, attempt: str = "") -> Decision:
    return Decision(found.key, action, why, found.operation, found.version_id, found.etag, attempt)


def _attempt(record: dict[str, Any]) -> str:
    """Names the job that replaces this record: the same record gives the same name."""
    seen = json.dumps([record.get("recorded_at"), record.get("execution"), record.get("task_id")])
    return "b" + hashlib.sha256(seen.encode()).hexdigest()[:16]


def _record(s3: Any, bucket: str, path: JobPath) -> dict[str, Any] | None:
    """The key's one record (result first, as it is written last), or None."""
    for _kind, key in path.record_keys:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in NOT_FOUND:
                raise
    return None


def run(svc: Services, bucket: str, key: str, *, reprocess: bool = False) -> dict[str, Any]:
    """Decide for `key`; for a job to run, judge the upload as submit does (a refused one gets its failure record
    and is skipped) and say how to start it: the execution's `name` and `input`. The backfill machine starts it
    and waits for its end (so its concurrency bounds the jobs in flight). Each decision is counted in the tally
    (`backfill#<action>`), for `picwish-ops status`."""
    decision = decide(svc.s3, bucket, svc.settings.output_bucket, key, reprocess=reprocess)
    start: dict[str, Any] = {}
    if decision.action != SKIP:
        upload = UploadRef(bucket, key, decision.version_id, decision.etag)
        judged = judge_upload(svc, upload, intake=BACKFILL)
        if isinstance(judged, str):
            decision = _as(decision, SKIP, f"{judged} by submit's rules (its failure record says why)")
        else:
            start = {"name": upload.execution_name(judged.operation.name, decision.attempt)}
            start["input"] = StepInput(judged).to_dict()
    tally.count(svc, **{f"backfill#{decision.action}": 1})
    return decision.to_dict() | start


def item_step(svc: Services, item: dict[str, Any]) -> dict[str, Any]:
    """The backfill machine's step for one listed object: `{"bucket", "key", "reprocess"}`."""
    return run(svc, str(item["bucket"]), str(item["key"]), reprocess=bool(item.get("reprocess")))
