"""The finalize step: every result downloaded, then written under the key with result.json, the commit marker —
if the upload is still the key's newest version."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from picwish_visual.download import fetch_output
from picwish_visual.errors import PicWishError, ResultExpiredError
from picwish_visual.results import Output

from . import keyrecord, records, storage, tally
from .failures import record_failure_step
from .payloads import Outcome, StepInput
from .reasons import Reason
from .services import Services, TransientApiError

# All of a finalize's downloads share one budget, well inside its 120 s timeout (the writes come after): a
# clothing task's many masks from a slow host must fail as a retryable step, not be killed mid-write.
DOWNLOAD_BUDGET_S = 90.0
DOWNLOAD_DEADLINE_S = 60.0  # any one download


def finalize_step(svc: Services, payload: StepInput) -> Outcome:
    """Download every result at once (links die after an hour), then replace the key's record and outputs with
    this job's, under deterministic keys (a retried finalize rewrites the same objects)."""
    job, poll = payload.job, payload.poll
    path = job.path
    fetched: dict[str, tuple[bytes, str | None]] = {}
    started = svc.clock()
    for name, ref in (poll.outputs or {}).items():
        if "key" in ref:  # came as bytes and waits under staging/
            fetched[name] = (storage.read_staged(svc, ref["key"]), None)
            continue
        left = DOWNLOAD_BUDGET_S - (svc.clock() - started)
        if left <= 0:
            raise TransientApiError(f"the results took longer than {DOWNLOAD_BUDGET_S:g} s to download")
        try:
            got = fetch_output(Output(url=ref["url"]), svc.settings.client, deadline_s=min(DOWNLOAD_DEADLINE_S, left))
        except ResultExpiredError as exc:
            expired = {"reason": Reason.RESULT_EXPIRED, "error": exc.to_record()}
            return record_failure_step(svc, replace(payload, failure=expired))
        except PicWishError as exc:
            raise TransientApiError(f"result download failed: {exc.message}") from None
        fetched[name] = (got.data, got.content_type)
    written: dict[str, str] = {}
    built: dict[str, Any] = {}

    def write() -> tuple[str, dict[str, Any], set[str]]:
        for name, (data, content_type) in fetched.items():
            key = storage.output_key(path, name, data)
            extra = {"ContentType": content_type} if content_type else {}
            svc.s3.put_object(Bucket=svc.settings.output_bucket, Key=key, Body=data, **extra)
            written[name] = key
        built.update(
            records.result(path, job, payload.create, poll, written, credits=job.operation.credits, clock=svc.clock)
        )
        return "result", built, set(written.values())

    # Staged outputs stay for a retried finalize to read again; a lifecycle rule of the output bucket ends them.
    found = keyrecord.commit(svc, path, job.upload, str(payload.execution), write)
    outcome = _outcome(svc, payload, found, written, built)
    tally.ended(svc, outcome.status, outcome.reason, task=True, api_calls=poll.api_calls, throttled=poll.throttles)
    return outcome


def _outcome(
    svc: Services, payload: StepInput, found: keyrecord.Standing, written: dict[str, str], record: dict[str, Any]
) -> Outcome:
    path, upload = payload.job.path, payload.job.upload
    if found.state == keyrecord.REPLACED:
        keyrecord.supersede(
            svc, path, upload, found, task_id=payload.create.task_id, execution=payload.execution, ended="succeeded"
        )
        return Outcome("superseded")
    if found.state == keyrecord.DELETED:
        return Outcome("failed", reason=Reason.OBJECT_MISSING, failure_key=path.failure_key)
    durations = record["durations_s"]  # the metrics report what the record says
    return Outcome(
        "succeeded",
        result_prefix=path.result_prefix,
        outputs=written,
        processing_s=durations["task"],
        overhead_s=durations["completed_to_written"],
    )
