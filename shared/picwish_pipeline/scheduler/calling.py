"""When a step's one API call happens: waiting for its reserved slot (Step Functions waits the whole seconds, the
step sleeps the rest), and calling in it. Words as defined in `picwish_pipeline.scheduler`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, Self, TypeVar

from ..payloads import Waiting
from ..services import Services
from . import plan
from .slot_table import SlotLimiter

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


def poll_at(svc: Services, planned: plan.NextPoll, *, busy: bool) -> Waiting:
    """A slot for a planned poll. An idle budget calls at the moment aimed for, inside its slot, rather than at
    the next slot's start; the poll is spare if the slot it got comes before its task is expected done."""
    slot_at = svc.limiter().reserve(planned.at, within=not busy, spare_until=planned.spare_until)
    return wait_for(svc, slot_at, spare=plan.spares(slot_at, planned.spare_until))


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
        _announce_late(svc, limiter, slot_at)
    return call()


def _announce_late(svc: Services, limiter: SlotLimiter, slot_at: float) -> None:
    """A call held up after announcing itself (a slow claim write, a busy host) says when it really goes before
    it goes, a little ahead (the write and the read take time), and waits for that moment, or for a later one if
    that moment would make a second hold more than `qps` calls."""
    go = svc.clock() + LATE_LEAD_S
    limiter.mark_called(slot_at, go)
    held = limiter.ready_at(slot_at)
    if held > go:
        go = held
        limiter.mark_called(slot_at, go)
    sleep_until(svc, go)


def sleep_until(svc: Services, moment: float) -> float:
    delay = moment - svc.clock()
    if delay > 0:
        svc.sleep(min(delay, SLOT_LEAD_S + 1.0))
    return svc.clock()
