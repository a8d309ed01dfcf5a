"""The backstop: a failure record for an execution that ended without one (FAILED, TIMED_OUT, ABORTED)."""

from __future__ import annotations

import json

from . import keyrecord, records, storage, tally
from .payloads import Outcome
from .reasons import Reason
from .services import Services
from .uploads import UploadRef, parse_job_path


def backstop_step(svc: Services, event: dict) -> Outcome:
    """For executions that ended FAILED, TIMED_OUT or ABORTED — failures no Catch can see (States.Runtime,
    States.DataLimitExceeded, the machine's own timeout) — write the record unless this upload's version already
    has one. A record of another version does not count: it may be an older one's."""
    detail = event.get("detail") or {}
    try:
        job = json.loads(detail.get("input") or "{}").get("job")
    except json.JSONDecodeError:
        job = None
    path = parse_job_path(str((job.get("upload") or {}).get("key", ""))) if isinstance(job, dict) else None
    if path is None:
        return Outcome("ignored")
    upload = UploadRef.from_dict(job["upload"])
    bucket = svc.settings.output_bucket
    for _kind, key in path.record_keys:
        found = storage.read_json(svc, bucket, key)
        if found is not None and UploadRef.from_dict(found.get("source") or {}).identity == upload.identity:
            return Outcome("already recorded")
    status = str(detail.get("status", "FAILED"))
    error = {"error": detail.get("error"), "message": detail.get("cause") or f"the execution ended {status}"}
    reason = Reason.of_execution(status)
    record = records.failure(
        path, job["upload"], reason=reason, error=error, clock=svc.clock, execution=detail.get("name")
    )
    standing = keyrecord.commit(svc, path, upload, str(detail.get("name")), lambda: ("failed", record, set()))
    task = storage.read_claim(svc, str(detail.get("name"))) is not None  # for the tally's count of tasks in flight
    if standing.state == keyrecord.REPLACED:
        keyrecord.supersede(svc, path, upload, standing, execution=detail.get("name"), ended=reason)
        tally.ended(svc, "superseded", reason, task=task, api_calls=0, throttled=0)
        return Outcome("superseded", reason=reason)
    tally.ended(svc, "failed", reason, task=task, api_calls=0, throttled=0)
    return Outcome("failed", reason=reason, failure_key=path.failure_key)
