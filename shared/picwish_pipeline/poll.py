"""The poll step: one GET in a reserved slot, the job's phase judged from the answer, and when to look again."""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from picwish.catalog import Operation, get_operation
from picwish.client import PicWishClient
from picwish.errors import (
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
from picwish.retry import Backoff

from . import polling, slots, storage
from .services import Services

logger = logging.getLogger(__name__)

IDLE_POLL_GAP = 0.5  # of the operation's poll interval: an idle budget can afford polls that close together
IDLE_MAX_POLL_GAP = 2.0  # ... and need not leave a running task alone longer than the docs' "every 1-2 s"
POLL_ERROR_CAP_S = 30.0  # the longest wait between polls that keep failing (scaled by WaitScale)


def poll_step(svc: Services, payload: dict) -> dict:
    """One GET in a reserved slot. Returns the job's phase — `done` (state exactly 1 with the operation's
    outputs), `processing` (with the wait before the next poll), `failed` (with the reason) or `timeout` — so
    the state machine's Choice judges one field the step has already judged."""
    job, create, previous = payload["job"], payload["create"], payload.get("poll") or {}
    op = get_operation(job["operation"])
    base = {
        "phase": "processing",
        "state": previous.get("state", 0),
        "polls": int(previous.get("polls", 0)),
        "throttles": int(previous.get("throttles", create.get("throttles", 0))),
        "api_calls": int(previous.get("api_calls", create.get("api_calls", 0))),
        "errors": int(previous.get("errors", 0)),
        **({"last_error": previous["last_error"]} if previous.get("last_error") else {}),
        **({"polled_at": previous["polled_at"]} if previous.get("polled_at") else {}),
        **({"progress": previous["progress"]} if previous.get("progress") is not None else {}),
    }
    if svc.clock() > float(create["deadline_at"]):
        return {**base, "phase": "timeout"}
    slot = slots.usable(svc, previous.get("slot_at", create.get("slot_at")))
    if slot["wait_s"] >= 1:
        return {**base, **slot}
    refreshed = bool(previous.get("refresh_key"))
    client = svc.client(refresh=refreshed)
    return slots.call_in_slot(
        svc, slot["slot_at"], lambda: _poll_call(svc, job, create, op, client, base, refreshed), otherwise=base
    )


def _poll_call(
    svc: Services, job: dict, create: dict, op: Operation, client: PicWishClient, base: dict, refreshed: bool
) -> dict:
    polled = {**base, "api_calls": base["api_calls"] + 1, "polls": base["polls"] + 1}
    try:
        result = client.get_task(op.name, create["task_id"])
    except AuthenticationError as exc:
        if refreshed:
            return _poll_failed(polled, "unauthorized", exc)
        # The key may have been rotated: read it again and poll again, in a slot of its own.
        return {**polled, "refresh_key": True, **slots.wait_for(svc, svc.limiter().reserve(svc.clock()))}
    except TaskFailedError as exc:
        return _poll_failed({**polled, "state": exc.state}, "task failed", exc)
    except UnknownStateError as exc:
        return _poll_failed({**polled, "state": None if exc.state == "<missing>" else exc.state}, "unknown state", exc)
    except IncompleteResultError as exc:
        return _poll_failed({**polled, "state": 1}, "unexpected response", exc)
    except RateLimitError as exc:
        polled["throttles"] += 1
        if polled["throttles"] > svc.settings.max_throttles:
            return _poll_failed(polled, "rate limited", exc)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {**polled, **slots.wait_for(svc, later)}
    except (APIServerError, APIConnectionError, UnexpectedResponseError) as exc:
        # The task exists and is paid for: a failing poll is waited out (backing off) until the job's deadline.
        errors = polled["errors"] + 1
        backoff = Backoff(op.poll_interval_s, POLL_ERROR_CAP_S, svc.jitter).delay(errors - 1)
        later = svc.limiter().reserve(svc.clock() + backoff * svc.settings.wait_scale)
        return {**polled, "errors": errors, "last_error": exc.to_record(), **slots.wait_for(svc, later)}
    except PicWishError as exc:
        return _poll_failed(polled, "api error", exc)
    now = svc.clock()
    polled.update(state=result.state, progress=result.progress, errors=0, polled_at=now)
    polled.pop("last_error", None)
    limiter = svc.limiter()
    schedule = limiter.schedule()
    durations = slots.durations(svc, schedule, op)
    created_at = float(create["created_at"])
    if result.is_done:
        missing = [f"data.{name}" for name in op.results_for(job["options"]) if not result.carries(name)]
        if missing:
            asked = f"without {' and '.join(missing)}, which its options ask for"
            error = IncompleteResultError(f"the task reported done {asked}", task_id=result.task_id)
            return _poll_failed(polled, "unexpected response", error)
        seconds = polling.completion_sample(
            created_at, base.get("polled_at"), now, result.created_at, result.completed_at
        )
        try:
            limiter.learn(op.name, durations.learn(seconds))
        except ClientError as exc:  # a lost sample only slows the learning; the task is done and paid for
            logger.warning("durations not learned", extra={"error": exc.response["Error"]["Code"]})
        return {
            **polled,
            "phase": "done",
            "outputs": storage.stash_outputs(svc, job, result.outputs()),
            "completed_at": result.completed_at,
            "task_created_at": result.created_at,
        }
    busy = schedule.busy(now)
    interval = op.poll_interval_s * svc.settings.wait_scale
    at = polling.next_poll_at(
        created_at,
        now,
        result.progress,
        durations,
        busy=busy,
        min_gap_s=interval * (1.0 if busy else IDLE_POLL_GAP),
        max_gap_s=interval * IDLE_MAX_POLL_GAP,
        earlier=_reading(created_at, base),
        deadline=float(create["deadline_at"]),
    )
    return {**polled, **slots.wait_for(svc, limiter.reserve(at))}


def _reading(created_at: float, previous: dict) -> tuple[float, int] | None:
    """The (elapsed, progress) the poll before this one saw, when it saw progress."""
    if previous.get("polled_at") is None or not previous.get("progress"):
        return None
    return float(previous["polled_at"]) - created_at, int(previous["progress"])


def _poll_failed(polled: dict, reason: str, error: PicWishError) -> dict:
    return {**polled, "phase": "failed", "failure": {"reason": reason, "error": error.to_record()}}
