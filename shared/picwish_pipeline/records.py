"""The JSON records a job ends in — `result.json` or `failed/….json` — built from what the steps carry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from picwish_visual.states import state_meaning, status_meaning

from .payloads import CreateState, Job, PollState
from .uploads import JobPath


def iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(float(seconds), UTC).isoformat()


def failure(
    path: JobPath,
    source: dict[str, Any],
    *,
    reason: str,
    error: dict[str, Any],
    clock: Callable[[], float],
    task_id: str | None = None,
    execution: str | None = None,
    api_calls: int | None = None,
    job: Job | None = None,
) -> dict[str, Any]:
    """What failed, in the API's own terms: the HTTP status or state code with its documented meaning. A job's
    record also says what it asked for (options, masks at their versions): a redrive resumes its task from it."""
    status, state = error.get("status"), error.get("state")
    if error.get("meaning"):
        meaning = error["meaning"]
    elif state is not None:
        meaning = state_meaning(state)
    elif status is not None:
        meaning = status_meaning(status)
    else:
        meaning = reason
    return {
        "outcome": "failed",
        "reason": reason,
        "error": error.get("error"),
        "operation": path.operation,
        "source": source,
        "status": status,
        "state": state,
        "meaning": meaning,
        "message": error.get("message"),
        "parameter": error.get("param"),
        "task_id": task_id or error.get("task_id"),
        "claimed_at": error.get("claimed_at"),  # an ambiguous create: when the attempt that may have paid began
        "execution": execution,
        "api_calls": api_calls,
        "recorded_at": iso(clock()),
        **({} if job is None else _asked(job)),
    }


def _asked(job: Job) -> dict[str, Any]:
    return {"options": job.options, "masks": job.masks, "mask_versions": job.mask_versions}


def result(
    path: JobPath,
    job: Job,
    create: CreateState,
    poll: PollState,
    written: dict[str, str],
    *,
    credits: int | None,
    clock: Callable[[], float],
) -> dict[str, Any]:
    created, completed, api_created = create.created_at, poll.completed_at, poll.task_created_at
    finished = clock()
    return {
        "outcome": "succeeded",
        "operation": job.operation.name,
        "source": job.upload.to_dict(),
        "options": job.options,
        "ignored_metadata": job.ignored_metadata,
        "task_id": create.task_id,
        "state": poll.state,
        "outputs": written,
        "timestamps": {
            "task_created": iso(created),
            "task_completed": iso(completed),
            "result_written": iso(finished),
        },
        "durations_s": {
            # Both ends from the API's own (whole-second) clock.
            "task": None if api_created is None or completed is None else int(completed) - int(api_created),
            "created_to_written": None if created is None else round(finished - float(created), 3),
            # The pipeline's own share: from the API's "completed" stamp to this record.
            "completed_to_written": None if completed is None else round(finished - float(completed), 3),
        },
        "api_calls": poll.api_calls,
        "polls": poll.polls,
        "throttled": poll.throttles,
        "credits": credits if credits is not None else "undocumented",
    }


def step_error(error: dict[str, Any]) -> dict[str, Any]:
    """A Catch's {Error, Cause} reduced to type and message: no stack trace ever reaches a record."""
    cause = error.get("Cause")
    message = cause
    if isinstance(cause, str) and cause.startswith("{"):
        try:
            parsed = json.loads(cause)
            message = parsed.get("errorMessage", cause)
        except json.JSONDecodeError:
            pass
    return {"error": error.get("Error"), "message": message}
