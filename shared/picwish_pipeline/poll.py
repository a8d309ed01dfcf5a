"""The poll step: one GET in a reserved slot, the job's phase judged from the answer, and when to look again."""

from __future__ import annotations

import logging
from dataclasses import replace

from botocore.exceptions import ClientError

from picwish_visual.catalog import Operation
from picwish_visual.client import PicWishClient
from picwish_visual.errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    IncompleteResultError,
    PicWishError,
    RateLimitError,
    TaskFailedError,
    UnexpectedResponseError,
    UnknownStateError,
)
from picwish_visual.results import TaskResult
from picwish_visual.retry import Backoff

from . import storage
from .payloads import PollState, StepInput
from .reasons import Reason
from .scheduler import calling, plan
from .scheduler.belief import Durations, completion_sample
from .services import Services

logger = logging.getLogger(__name__)

POLL_ERROR_CAP_S = 30.0  # the longest wait between polls that keep failing (scaled by WaitScale)


def poll_step(svc: Services, payload: StepInput) -> PollState:
    """One GET in a reserved slot. Returns the job's phase — `done` (state exactly 1 with the operation's
    outputs), `processing` (with the wait before the next poll), `failed` (with the reason) or `timeout` — so
    the state machine's Choice judges one field the step has already judged."""
    create, previous = payload.create, payload.poll
    # What carries on from poll to poll; the first poll carries the create's counts on.
    base = PollState(
        state=previous.state,
        polls=previous.polls,
        throttles=create.throttles if previous.throttles is None else previous.throttles,
        api_calls=create.api_calls if previous.api_calls is None else previous.api_calls,
        errors=previous.errors,
        last_error=previous.last_error or None,
        polled_at=previous.polled_at or None,
        progress=previous.progress,
    )
    if svc.clock() > float(create.deadline_at or 0):
        return replace(base, phase="timeout")
    refreshed = bool(previous.refresh_key)
    client = svc.client(refresh=refreshed)  # before a slot is taken, as in create
    held = previous if previous.slot_at is not None else create
    slot = calling.usable(svc, held.slot_at, spare=bool(held.spare))
    if slot.wait_s >= 1:
        return base.waiting(slot)
    return calling.call_in_slot(
        svc,
        slot.slot_at,
        lambda: _poll_call(svc, payload, client, base, refreshed),
        otherwise=base,
        spare=slot.spare,
    )


def _poll_call(svc: Services, payload: StepInput, client: PicWishClient, base: PollState, refreshed: bool) -> PollState:
    create, op = payload.create, payload.job.operation
    polled = replace(base, api_calls=(base.api_calls or 0) + 1, polls=base.polls + 1)
    try:
        result = client.get_task(op.name, str(create.task_id))
    except PicWishError as exc:
        return _unanswered(svc, op, polled, exc, refreshed=refreshed)
    now = svc.clock()
    polled = replace(polled, state=result.state, progress=result.progress, errors=0, polled_at=now, last_error=None)
    schedule = svc.limiter().schedule()
    durations = plan.belief_of(schedule, op, svc.settings.wait_scale)
    created_at = float(create.created_at or 0)
    if result.is_done:
        return _done(svc, payload, result, polled, durations, previous_poll=base.polled_at)
    planned = plan.plan_next_poll(
        op,
        svc.settings.wait_scale,
        schedule,
        durations,
        created_at=created_at,
        now=now,
        progress=result.progress,
        earlier=_reading(created_at, base),
        deadline=float(create.deadline_at or 0),
    )
    return polled.waiting(calling.poll_at(svc, planned, busy=schedule.busy(now)))


def _unanswered(svc: Services, op: Operation, polled: PollState, exc: PicWishError, *, refreshed: bool) -> PollState:
    """A poll that got an error instead of the task: the job fails, or the poll is made again later."""
    if isinstance(exc, AuthenticationError):
        if refreshed:  # the task is paid for: a revoked key is waited out (read again each time) like a 5xx
            return _failing(svc, op, replace(polled, refresh_key=True), exc)
        # The key may have been rotated: read it again and poll again, in a slot of its own.
        return replace(polled, refresh_key=True).waiting(calling.wait_for(svc, svc.limiter().reserve(svc.clock())))
    if isinstance(exc, TaskFailedError):
        return _poll_failed(replace(polled, state=exc.state), Reason.TASK_FAILED, exc)
    if isinstance(exc, UnknownStateError):
        state = None if exc.state == "<missing>" else exc.state
        return _poll_failed(replace(polled, state=state), Reason.UNKNOWN_STATE, exc)
    if isinstance(exc, IncompleteResultError):
        return _poll_failed(replace(polled, state=1), Reason.UNEXPECTED_RESPONSE, exc)
    if isinstance(exc, RateLimitError):
        polled = replace(polled, throttles=(polled.throttles or 0) + 1)
        if (polled.throttles or 0) > svc.settings.max_throttles:
            return _poll_failed(polled, Reason.RATE_LIMITED, exc)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return polled.waiting(calling.wait_for(svc, later))
    if isinstance(exc, (APIServerError, APIConnectionError, UnexpectedResponseError)):
        return _failing(svc, op, polled, exc)
    return _poll_failed(polled, Reason.API_ERROR, exc)


def _done(
    svc: Services,
    payload: StepInput,
    result: TaskResult,
    polled: PollState,
    durations: Durations,
    *,
    previous_poll: float | None,
) -> PollState:
    """The task is done: with every output its options ask for, its outputs stashed and its time learned."""
    job, op = payload.job, payload.job.operation
    missing = [f"data.{name}" for name in op.results_for(job.options) if not result.carries(name)]
    if missing:
        asked = f"without {' and '.join(missing)}, which its options ask for"
        error = IncompleteResultError(f"the task reported done {asked}", task_id=result.task_id)
        return _poll_failed(polled, Reason.UNEXPECTED_RESPONSE, error)
    created_at, now = float(payload.create.created_at or 0), float(polled.polled_at or 0)
    seconds = completion_sample(created_at, previous_poll, now, result.created_at, result.completed_at)
    try:
        svc.limiter().learn(op.name, durations.learn(seconds))
    except ClientError as exc:  # a lost sample only slows the learning; the task is done and paid for
        logger.warning("durations not learned", extra={"error": exc.response["Error"]["Code"]})
    return replace(
        polled,
        phase="done",
        outputs=storage.stash_outputs(svc, job, str(payload.execution), result.outputs()),
        completed_at=result.completed_at,
        task_created_at=result.created_at,
    )


def _reading(created_at: float, previous: PollState) -> tuple[float, int] | None:
    """The (elapsed, progress) the poll before this one saw, when it saw progress."""
    if previous.polled_at is None or not previous.progress:
        return None
    return previous.polled_at - created_at, int(previous.progress)


def _failing(svc: Services, op: Operation, polled: PollState, exc: PicWishError) -> PollState:
    """The task exists and is paid for: a failing poll is waited out (backing off) until the job's deadline."""
    errors = polled.errors + 1
    backoff = Backoff(op.poll_interval_s, POLL_ERROR_CAP_S, svc.jitter).delay(errors - 1)
    later = svc.limiter().reserve(svc.clock() + backoff * svc.settings.wait_scale)
    failing = replace(polled, errors=errors, last_error=exc.to_record())
    return failing.waiting(calling.wait_for(svc, later))


def _poll_failed(polled: PollState, reason: str, error: PicWishError) -> PollState:
    return replace(polled, phase="failed", failure={"reason": reason, "error": error.to_record()})
