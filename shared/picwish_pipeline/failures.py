"""The record-failure step: the one place a failed job gets its failure record, whatever failed."""

from __future__ import annotations

from picwish.errors import TaskFailedError, UnknownStateError
from picwish.states import FAILED_STATES, parse_state

from . import records, storage
from .services import Services
from .uploads import parse_job_path


def record_failure_step(svc: Services, payload: dict) -> dict:
    """The one place a failed job gets its record, whatever failed: the create, the task, the deadline, an
    undocumented state, or a step that threw (the Catch passes `error`)."""
    job = payload["job"]
    path = parse_job_path(job["upload"]["key"])
    create, poll = payload.get("create") or {}, payload.get("poll") or {}
    reason, error = _failure_reason(payload, create, poll)
    record = records.failure(
        path,
        job["upload"],
        reason=reason,
        error=error,
        clock=svc.clock,
        task_id=create.get("task_id"),
        execution=payload.get("execution"),
        api_calls=poll.get("api_calls", create.get("api_calls")),
    )
    storage.put_json(svc.s3, svc.settings.output_bucket, path.failure_key, record)
    return {"status": "failed", "reason": reason, "failure_key": path.failure_key}


def _failure_reason(payload: dict, create: dict, poll: dict) -> tuple[str, dict]:
    if payload.get("failure"):
        return payload["failure"]["reason"], payload["failure"]["error"]
    if payload.get("error"):
        return "step failed", records.step_error(payload["error"])
    if create.get("status") == "failed":
        return create["reason"], create["error"]
    if poll.get("phase") == "timeout":
        seconds = round(float(create.get("deadline_at", 0)) - float(create.get("created_at", 0)))
        message = f"the task was still processing after {seconds} s"
        last = poll.get("last_error")
        if last:  # the deadline came while polls were failing: say how
            message = f"no answer about the task for {poll.get('errors')} polls before the {seconds} s deadline"
            return "timeout", {**last, "message": f"{message}; the last: {last.get('message')}"}
        return "timeout", {"message": message, "state": poll.get("state")}
    if poll.get("failure"):
        return poll["failure"]["reason"], poll["failure"]["error"]
    state = poll.get("state")
    if parse_state(state) in FAILED_STATES:
        return "task failed", TaskFailedError("", state=state).to_record()
    return "unknown state", UnknownStateError(f"undocumented task state {state!r}", state=state).to_record()
