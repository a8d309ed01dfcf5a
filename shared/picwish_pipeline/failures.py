"""The record-failure step: the one place a failed job gets its failure record, whatever failed."""

from __future__ import annotations

from typing import Any

from picwish_visual.errors import TaskFailedError, UnknownStateError
from picwish_visual.states import FAILED_STATES, parse_state

from . import keyrecord, records, tally
from .payloads import Outcome, StepInput
from .reasons import Reason
from .services import Services


def record_failure_step(svc: Services, payload: StepInput) -> Outcome:
    """The one place a failed job gets its record, whatever failed: the create, the task, the deadline, an
    undocumented state, or a step that threw (the Catch passes `error`). The record becomes the key's only if
    the upload is still its newest version; a replaced upload's failure goes to `superseded/`."""
    job, create, poll = payload.job, payload.create, payload.poll
    path = job.path
    reason, error = _failure_reason(payload)
    record = records.failure(
        path,
        job.upload.to_dict(),
        reason=reason,
        error=error,
        clock=svc.clock,
        task_id=create.task_id,
        execution=payload.execution,
        api_calls=create.api_calls if poll.api_calls is None else poll.api_calls,
        job=job,
    )
    owner = str(payload.execution or job.upload.identity)
    found = keyrecord.commit(svc, path, job.upload, owner, lambda: ("failed", record, set()))
    if found.state == keyrecord.REPLACED:
        facts = {"task_id": create.task_id, "execution": payload.execution, "ended": reason}
        keyrecord.supersede(svc, path, job.upload, found, **facts)
        outcome = Outcome("superseded", reason=reason)
    else:
        reason = Reason.OBJECT_MISSING if found.state == keyrecord.DELETED else reason
        outcome = Outcome("failed", reason=reason, failure_key=path.failure_key)
    spent = {"api_calls": record.get("api_calls"), "throttled": poll.throttles or create.throttles}
    tally.ended(svc, outcome.status, outcome.reason, task=bool(create.task_id), **spent)
    return outcome


def _failure_reason(payload: StepInput) -> tuple[str, dict[str, Any]]:
    create, poll = payload.create, payload.poll
    if payload.failure:
        return payload.failure["reason"], payload.failure["error"]
    if payload.error:
        return Reason.STEP_FAILED, records.step_error(payload.error)
    if create.status == "failed":
        return str(create.reason), create.error or {}
    if poll.phase == "timeout":
        seconds = round(float(create.deadline_at or 0) - float(create.created_at or 0))
        message = f"the task was still processing after {seconds} s"
        last = poll.last_error
        if last:  # the deadline came while polls were failing: say how
            message = f"no answer about the task for {poll.errors} polls before the {seconds} s deadline"
            return Reason.TIMEOUT, {**last, "message": f"{message}; the last: {last.get('message')}"}
        return Reason.TIMEOUT, {"message": message, "state": poll.state}
    if poll.failure:
        return poll.failure["reason"], poll.failure["error"]
    state = poll.state
    if parse_state(state) in FAILED_STATES:
        return Reason.TASK_FAILED, TaskFailedError("", state=state).to_record()
    return Reason.UNKNOWN_STATE, UnknownStateError(f"undocumented task state {state!r}", state=state).to_record()
