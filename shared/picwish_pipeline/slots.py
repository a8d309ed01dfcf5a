"""When a step's one API call happens: waiting for its reserved QPS slot (Step Functions waits the whole seconds,
the step sleeps the rest), and calling in it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, Self, TypeVar

from picwish_visual.catalog import Operation

from . import polling
from .payloads import Waiting
from .ratelimit import Schedule
from .services import Services

SLOT_LEAD_S = 0.5  # a step wakes this long before its slot, so an invocation's start-up does not miss it
READY_LEAD_S = 0.25  # the other calls' send times are read this long before the slot: the read is off the clock
LATE_LEAD_S = 0.1  # a late call announces a moment this far ahead, room for a write and a read on a busy host


class WaitsForSlots(Protocol):
    def waiting(self, wait: Waiting) -> Self: ...


State = TypeVar("State", bound=WaitsForSlots)


def usable(svc: Services, slot_at: float | None, *, spare: bool = False) -> Waiting:
    """A usable slot: the one already reserved (`spare` if it was reserved so) unless it went stale (a retried
    step), else a new one."""
    limiter = svc.limiter()
    if slot_at is None or limiter.missed(float(slot_at)):
        return wait_for(svc, limiter.reserve(svc.clock()))
    return wait_for(svc, float(slot_at), spare=spare)


def poll_at(svc: Services, plan: polling.NextPoll, *, busy: bool) -> Waiting:
    """A slot for a planned poll. An idle budget calls at the moment aimed for, inside its slot, rather than at
    the next slot's start; the poll is spare if the slot it got comes before its task is expected done."""
    slot_at = svc.limiter().reserve(plan.at, within=not busy, spare_until=plan.spare_until)
    return wait_for(svc, slot_at, spare=polling.spares(slot_at, plan.spare_until))


def wait_for(svc: Services, slot_at: float, *, spare: bool = False) -> Waiting:
    """Step Functions waits whole seconds, until about SLOT_LEAD_S before the slot; the step sleeps the rest."""
    return Waiting(slot_at, max(0, math.floor(slot_at - svc.clock() - SLOT_LEAD_S)), spare)


def call_in_slot(
    svc: Services,
    slot_at: float,
    call: Callable[[], State],
    *,
    otherwise: State,
    prepare: Callable[[], State | None] | None = None,
    spare: bool = False,
) -> State:
    """Make one API call in its slot: shortly before it, learn when the calls before it really went out and
    announce when this one will; call at the slot, or a little after when a late call before it would make this
    one the (qps + 1)-th in a second. A slot missed by more than the limiter's slip gives way to a new one
    (`otherwise`, waiting for it). `prepare` runs once the slot is sure, in the time left before it (off the
    clock); an answer from it is the step's output and no call is made. A `spare` call whose slot was taken by
    one that could not wait makes no call either: it waits for another slot — not a spare one, so a reading
    gives way once and is never starved."""
    limiter = svc.limiter()
    sleep_until(svc, slot_at - READY_LEAD_S)
    ready = limiter.ready_at(slot_at)
    if limiter.missed(slot_at, at=ready):
        return otherwise.waiting(wait_for(svc, limiter.reserve(ready)))
    # Announced before the call: an answer can take a while, and the calls after this one must not wait for it.
    if not limiter.mark_called(slot_at, ready, spare=spare):
        return otherwise.waiting(wait_for(svc, limiter.reserve(ready, within=True)))
    early = prepare() if prepare is not None else None
    if early is not None:
        return early
    sent_at = sleep_until(svc, ready)
    if sent_at - ready > limiter.margin_s / 2:
        # Held up after announcing itself (a slow claim write, a busy host): the calls after this one judge their
        # second by the announced time. Say when it really goes before it goes — said only after the call, a
        # call reading in between took the old time and made a second hold three calls (a 429 in a busy local
        # burst) — and wait if that moment would do the same. The moment said is a little ahead, and the call
        # waits for it: the write and the read take time, and a call later than it said is the same hazard.
        go = svc.clock() + LATE_LEAD_S
        limiter.mark_called(slot_at, go)
        held = limiter.ready_at(slot_at)
        if held > go:
            go = held
            limiter.mark_called(slot_at, go)
        sleep_until(svc, go)
    return call()


def sleep_until(svc: Services, moment: float) -> float:
    delay = moment - svc.clock()
    if delay > 0:
        svc.sleep(min(delay, SLOT_LEAD_S + 1.0))
    return svc.clock()


def durations(schedule: Schedule, op: Operation, wait_scale: float) -> polling.Durations:
    """What the operation's tasks have been taking; before any completed, the catalog's guess (scaled)."""
    return schedule.durations_of(op.name, op.typical_processing_s * wait_scale)
