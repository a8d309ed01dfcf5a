"""The backstop: a failure record for an execution that ended without one (FAILED, TIMED_OUT, ABORTED)."""

from __future__ import annotations

import json

from . import records, storage
from .payloads import Outcome
from .reasons import Reason
from .services import Services
from .uploads import parse_job_path


def backstop_step(svc: Services, event: dict) -> Outcome:
    """For executions that ended FAILED, TIMED_OUT or ABORTED — failures no Catch can see (States.Runtime,
    States.DataLimitExceeded, the machine's own timeout) — write the record unless one already exists."""
    detail = event.get("detail") or {}
    try:
        job = json.loads(detail.get("input") or "{}").get("job")
    except json.JSONDecodeError:
        job = None
    path = parse_job_path(str((job.get("upload") or {}).get("key", ""))) if isinstance(job, dict) else None
    if path is None:
        return Outcome("ignored")
    bucket = svc.settings.output_bucket
    if storage.exists(svc, bucket, path.result_key) or storage.exists(svc, bucket, path.failure_key):
        return Outcome("already recorded")
    status = str(detail.get("status", "FAILED"))
    error = {"error": detail.get("error"), "message": detail.get("cause") or f"the execution ended {status}"}
    record = records.failure(
        path,
        job["upload"],
        reason=Reason.of_execution(status),
        error=error,
        clock=svc.clock,
        execution=detail.get("name"),
    )
    storage.put_json(svc.s3, bucket, path.failure_key, record)
    return Outcome("failed", reason=record["reason"], failure_key=path.failure_key)
