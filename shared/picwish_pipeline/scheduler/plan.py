"""When to poll a task: from the operation's belief, the task's own progress, and how busy the budget is. Pure
functions of numbers, so every rule is testable without a clock or a table (`bench.simulate` replays them)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from picwish_visual.catalog import Operation
from picwish_visual.states import MAX_PROCESSING_S

from .belief import Durations

IDLE_QUANTILE = 0.15  # an idle budget polls early, to read the task's progress, and follows it to the end
FIRST_IDLE_QUANTILE = 0.05  # ... its first poll earlier still: a task done before it waits for it
BUSY_QUANTILE = 0.92  # under a backlog a poll goes where most tasks are done: every poll spends a create's slot
BUSY_MARGIN = 0.15  # under a backlog a progress-based estimate is padded: a poll that comes early is wasted
ARRIVAL_MARGIN_S = 0.05  # a poll aimed at the predicted end arrives just after it, not just before
MAX_EXPONENT = 3.0  # the steepest progress curve (progress ∝ time^k) two readings may suggest, either way
IDLE_AGE_SHARE = 1 / 4  # an idle budget reads a running task again within this share of its age ...
STALLED_AGE_SHARE = 1 / 8  # ... and a stalled one (the same percent twice) within this share
DEADLINE_LEAD_S = 2.0  # the last poll before a job's deadline comes this long before it
IDLE_POLL_GAP = 0.5  # of the operation's poll interval: an idle budget can afford polls that close together
IDLE_MAX_POLL_GAP = 1.0  # ... and need not leave a running task alone longer than the docs' "every 1-2 s"
BUSY_WINDOW_S = 10.0  # creates queued further ahead than this (about ten) mean the budget is busy


@dataclass(frozen=True)
class Schedule:
    """The shared scheduling item: where the create lanes end (the uploads' and a backfill's), and each
    operation's learned belief."""

    lane_at: float | None
    durations: dict[str, dict]
    backfill_at: float | None = None

    @classmethod
    def from_item(cls, item: dict) -> Schedule:
        lane = float(item["lane_at"]["N"]) if "lane_at" in item else None
        backfill = float(item["backfill_at"]["N"]) if "backfill_at" in item else None
        return cls(lane, {k[2:]: v for k, v in item.items() if k.startswith("d:")}, backfill)

    @property
    def queue_end(self) -> float | None:
        """When the last create now queued, in either lane, goes out."""
        ends = [at for at in (self.lane_at, self.backfill_at) if at is not None]
        return max(ends) if ends else None

    def busy(self, now: float, window_s: float = BUSY_WINDOW_S) -> bool:
        """Creates are queued beyond the next few seconds: the budget is the bottleneck."""
        return self.queue_end is not None and self.queue_end > now + window_s

    def durations_of(self, operation: str, typical_s: float) -> Durations:
        return Durations.from_item(self.durations.get(operation), typical_s)


def belief_of(schedule: Schedule, op: Operation, wait_scale: float) -> Durations:
    """What the operation's tasks have been taking; before any completed, the catalog's guess (scaled)."""
    return schedule.durations_of(op.name, op.typical_processing_s * wait_scale)


@dataclass(frozen=True)
class NextPoll:
    """When to poll next, and until when that poll is a reading (`spare_until`; None: never, as under a busy
    budget, where every poll is aimed where its task is most likely done)."""

    at: float
    spare_until: float | None = None

    @property
    def spare(self) -> bool:
        """Whether the poll, at the moment planned, is a reading."""
        return spares(self.at, self.spare_until)


def spares(at: float, spare_until: float | None) -> bool:
    """Whether a poll at `at` is a reading, which gives its slot up to a call that cannot wait."""
    return spare_until is not None and at < spare_until - 1e-9


def first_poll(created_at: float, durations: Durations, *, busy: bool) -> NextPoll:
    if busy:
        return NextPoll(created_at + durations.quantile(BUSY_QUANTILE))
    return NextPoll(created_at + durations.quantile(FIRST_IDLE_QUANTILE), created_at + durations.quantile(0.5))


@dataclass(frozen=True)
class Seen:
    """What a poll that found its task still processing knows, and the gaps and bounds its plan keeps: never
    sooner than `min_gap_s`; an idle budget's never later than `max_gap_s`; none past `deadline` (less
    DEADLINE_LEAD_S), past `limit_s` after the create (the API ends every task by then) or, under a backlog, past
    `backlog_ends` (when the create lane empties)."""

    created_at: float
    now: float
    progress: int | None
    durations: Durations
    busy: bool
    min_gap_s: float
    max_gap_s: float | None = None
    earlier: tuple[float, int] | None = None  # the (elapsed, progress) of the poll before, when it saw progress
    deadline: float | None = None
    limit_s: float | None = None
    backlog_ends: float | None = None

    @property
    def elapsed(self) -> float:
        return max(0.0, self.now - self.created_at)

    @property
    def shows_progress(self) -> bool:
        return self.progress is not None and 0 < self.progress < 100 and self.elapsed > 0

    @cached_property
    def progress_total(self) -> float | None:
        """The processing time the task's progress predicts (computed once per plan); None when it shows none."""
        if self.progress is None or not self.shows_progress:
            return None
        return predicted_total(self.elapsed, self.progress, self.earlier)

    @property
    def fitted(self) -> bool:
        """Two readings of rising progress: a curve through them, and the prediction stands."""
        e = self.earlier
        return self.shows_progress and e is not None and 0 < e[0] < self.elapsed and 0 < e[1] < (self.progress or 0)

    @property
    def stalled(self) -> bool:
        return self.shows_progress and self.earlier is not None and self.earlier[1] == self.progress


def next_poll(created_at: float, now: float, progress: int | None, durations: Durations, **bounds: Any) -> NextPoll:
    """After a poll that found the task still processing (`Seen` names the bounds): aimed at the predicted end
    (from progress when shown, else from the belief), brought forward by each of CAPS in turn; for an idle budget,
    a reading until the task is expected done."""
    seen = Seen(created_at, now, progress, durations, **bounds)
    at = _aimed_at(seen)
    for cap in CAPS:
        at = cap(seen, at)
    at = max(now + seen.min_gap_s, at)
    if seen.busy:
        return NextPoll(at)
    return NextPoll(at, _expected_end(seen))


def _aimed_at(seen: Seen) -> float:
    """The moment the estimate aims for, before the caps."""
    elapsed, durations, total = seen.elapsed, seen.durations, seen.progress_total
    if total is not None:
        if not seen.busy and seen.earlier is None:
            # One reading cannot tell a curve from a line: a second one, half-way to the predicted end, can.
            total = max(elapsed + seen.min_gap_s, elapsed + (total - elapsed) / 2)
        if seen.busy:
            total = max(total * (1 + BUSY_MARGIN), durations.quantile_after(0.5, elapsed))
    else:
        total = durations.quantile_after(BUSY_QUANTILE if seen.busy else IDLE_QUANTILE, elapsed)
        if not seen.busy:
            # No progress shown yet: the task is in its first states, not near its end, so it is not looked at
            # again every min gap once past every estimate.
            total = max(total, elapsed * 1.5)
    return seen.created_at + total + ARRIVAL_MARGIN_S


def _expected_end(seen: Seen) -> float:
    """From when a poll expects to find the task done: the end predicted from progress, else the belief's median."""
    total = seen.progress_total
    if total is not None:
        return seen.created_at + total + ARRIVAL_MARGIN_S
    return seen.created_at + seen.durations.quantile_after(0.5, seen.elapsed)


def _checks_the_hint(seen: Seen, at: float) -> float:
    """Progress is a hint, not a clock: an idle budget checks a prediction within a share of the task's age (a
    smaller one when the progress stalled, as its jump to done may come at any moment), never past `max_gap_s`."""
    if seen.busy or seen.max_gap_s is None:
        return at
    share = STALLED_AGE_SHARE if seen.stalled else IDLE_AGE_SHARE
    return min(at, seen.now + max(seen.max_gap_s, seen.elapsed * share))


def _until_a_curve_fits(seen: Seen, at: float) -> float:
    """One early reading can put the end far out: look again before the task has run twice as long (three times
    under a backlog, where a poll saved is a create's slot)."""
    if seen.fitted:
        return at
    return min(at, seen.now + max(seen.min_gap_s, seen.elapsed * (2 if seen.busy else 1)))


def _before_the_deadline(seen: Seen, at: float) -> float:
    """Once more before the job's deadline."""
    if seen.deadline is None or seen.deadline - DEADLINE_LEAD_S <= seen.now + seen.min_gap_s:
        return at
    return min(at, seen.deadline - DEADLINE_LEAD_S)


def _by_the_api_limit(seen: Seen, at: float) -> float:
    """The API ends every task by its limit; past it by our clock, the limit says nothing more."""
    if seen.limit_s is None or seen.now >= seen.created_at + seen.limit_s:
        return at
    return min(at, seen.created_at + seen.limit_s + ARRIVAL_MARGIN_S)


def _by_the_backlog_end(seen: Seen, at: float) -> float:
    """A busy plan spaces polls to leave slots to creates; once the lane empties those slots are idle, and a poll
    planned far past it would hold up the end of the whole burst."""
    if not seen.busy or seen.backlog_ends is None:
        return at
    return min(at, seen.backlog_ends)


# The caps on a planned poll, in the order they apply.
CAPS: tuple[Callable[[Seen, float], float], ...] = (
    _checks_the_hint,
    _until_a_curve_fits,
    _before_the_deadline,
    _by_the_api_limit,
    _by_the_backlog_end,
)


def predicted_total(elapsed: float, progress: int, earlier: tuple[float, int] | None = None) -> float:
    """When a task reporting `progress` % after `elapsed` s will be done. One reading: progress proportional to
    time. Two readings of different progress: a curve progress ∝ time^k through both (k = 1 is proportional),
    so a task whose progress speeds up or slows down is not taken for a proportional one."""
    # Progress is whole percents: (p + 1) % may already be reached, so the early end of that range is aimed at.
    reached = min(99.5, progress + 0.5) / 100
    exponent = 1.0
    if earlier is not None:
        e1, p1 = earlier
        if 0 < e1 < elapsed and 0 < p1 < progress:
            exponent = min(MAX_EXPONENT, max(1 / MAX_EXPONENT, math.log(progress / p1) / math.log(elapsed / e1)))
    return elapsed / reached ** (1 / exponent)


def plan_next_poll(
    op: Operation,
    wait_scale: float,
    schedule: Schedule,
    durations: Durations,
    *,
    created_at: float,
    now: float,
    progress: int | None,
    earlier: tuple[float, int] | None,
    deadline: float,
) -> NextPoll:
    """When to poll a task seen still processing at `now`, with this operation's gaps and the budget's state."""
    busy = schedule.busy(now)
    interval = op.poll_interval_s * wait_scale
    return next_poll(
        created_at,
        now,
        progress,
        durations,
        busy=busy,
        min_gap_s=interval * (1.0 if busy else IDLE_POLL_GAP),
        max_gap_s=interval * IDLE_MAX_POLL_GAP,
        earlier=earlier,
        deadline=deadline,
        limit_s=MAX_PROCESSING_S * wait_scale,
        backlog_ends=schedule.lane_at,
    )
