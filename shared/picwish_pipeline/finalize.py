"""The finalize step: every result downloaded and written, then result.json, the commit marker."""

from __future__ import annotations

from dataclasses import replace

from picwish.download import fetch_output
from picwish.errors import PicWishError, ResultExpiredError
from picwish.results import Output

from . import records, storage
from .failures import record_failure_step
from .payloads import Outcome, StepInput
from .reasons import Reason
from .services import Services, TransientApiError


def finalize_step(svc: Services, payload: StepInput) -> Outcome:
    """Download every result at once (links die after an hour), write them and result.json under deterministic
    keys (a retried finalize rewrites the same objects), and drop an older failure record of the same path."""
    job, poll = payload.job, payload.poll
    path = job.path
    written: dict[str, str] = {}
    for name, ref in (poll.outputs or {}).items():
        if "key" in ref:
            written[name] = ref["key"]
            continue
        try:
            got = fetch_output(Output(url=ref["url"]), svc.settings.client)
        except ResultExpiredError as exc:
            expired = {"reason": Reason.RESULT_EXPIRED, "error": exc.to_record()}
            return record_failure_step(svc, replace(payload, failure=expired))
        except PicWishError as exc:
            raise TransientApiError(f"result download failed: {exc.message}") from None
        key = storage.output_key(path, name, got.data)
        svc.s3.put_object(Bucket=svc.settings.output_bucket, Key=key, Body=got.data, ContentType=got.content_type)
        written[name] = key
    # An older failure record goes first and result.json comes last: it is the commit marker readers wait for.
    svc.s3.delete_object(Bucket=svc.settings.output_bucket, Key=path.failure_key)
    record = records.result(path, job, payload.create, poll, written, credits=job.operation.credits, clock=svc.clock)
    storage.put_json(svc.s3, svc.settings.output_bucket, path.result_key, record)
    durations = record["durations_s"]  # the metrics report what the record says
    return Outcome(
        "succeeded",
        result_prefix=path.result_prefix,
        outputs=written,
        processing_s=durations["task"],
        overhead_s=durations["completed_to_written"],
    )
