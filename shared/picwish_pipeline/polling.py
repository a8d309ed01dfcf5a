"""When to poll a task: from what recent tasks of its operation took, the task's own progress, and how busy the
QPS budget is. Pure functions of numbers, so every rule is testable without a clock or a table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

LEARNING_RATE = 0.2  # weight of the newest completion: about the last ten tasks of an operation count
PRIOR_SIGMA = 0.6  # spread (of log seconds) assumed before any task of the operation has completed
MIN_SIGMA = 0.1
OUTLIER_SIGMAS = 2.5  # a sample's pull on the belief is capped at this many of its sigmas
IDLE_QUANTILE = 0.15  # an idle budget polls early, to read the task's progress, and follows it to the end
FIRST_IDLE_QUANTILE = 0.05  # ... its first poll earlier still: a task done before it waits for it
BUSY_QUANTILE = 0.92  # under a backlog a poll goes where most tasks are done: every poll spends a create's slot
BUSY_MARGIN = 0.15  # under a backlog a progress-based estimate is padded: a poll that comes early is wasted
ARRIVAL_MARGIN_S = 0.05  # a poll aimed at the predicted end arrives just after it, not just before
MAX_EXPONENT = 3.0  # the steepest progress curve (progress ∝ time^k) two readings may suggest, either way
IDLE_AGE_SHARE = 1 / 4  # an idle budget reads a running task again within this share of its age ...
STALLED_AGE_SHARE = 1 / 8  # ... and a stalled one (the same percent twice) within this share
DEADLINE_LEAD_S = 2.0  # the last poll before a job's deadline comes this long before it
MAX_TAIL = 0.999  # conditional quantiles stop here: past it a lognormal says "never", a task still ends


@dataclass(frozen=True)
class Durations:
    """A lognormal belief about an operation's processing time: mean and variance of log seconds."""

    mu: float
    var: float
    samples: int = 0

    @classmethod
    def prior(cls, typical_s: float) -> Durations:
        return cls(math.log(max(typical_s, 0.01)), PRIOR_SIGMA**2, 0)

    @property
    def sigma(self) -> float:
        return max(MIN_SIGMA, math.sqrt(self.var))

    def quantile(self, q: float) -> float:
        return math.exp(self.mu + NormalDist().inv_cdf(min(max(q, 1e-6), MAX_TAIL)) * self.sigma)

    def quantile_after(self, q: float, elapsed_s: float) -> float:
        """The q-quantile of the processing time among tasks still running after `elapsed_s`."""
        if elapsed_s <= 0:
            return self.quantile(q)
        done = NormalDist(self.mu, self.sigma).cdf(math.log(elapsed_s))
        return max(elapsed_s, self.quantile(done + q * (1 - done)))

    def learn(self, seconds: float) -> Durations:
        """One more completed task, weighted as the newest (an exponentially weighted mean and variance). A task
        far outside the belief counts as if it were OUTLIER_SIGMAS away: one 170 s task among 5 s ones must not
        move every later first poll out to half a minute."""
        x = math.log(max(seconds, 0.01))
        limit = OUTLIER_SIGMAS * self.sigma
        delta = min(limit, max(-limit, x - self.mu))
        mu = self.mu + LEARNING_RATE * delta
        var = (1 - LEARNING_RATE) * (self.var + LEARNING_RATE * delta * delta)
        return Durations(mu, var, self.samples + 1)

    def to_item(self) -> dict:
        return {"M": {"mu": {"N": repr(self.mu)}, "var": {"N": repr(self.var)}, "n": {"N": str(self.samples)}}}

    @classmethod
    def from_item(cls, item: dict | None, typical_s: float) -> Durations:
        if not item or "M" not in item:
            return cls.prior(typical_s)
        m = item["M"]
        return cls(float(m["mu"]["N"]), float(m["var"]["N"]), int(m["n"]["N"]))


@dataclass(frozen=True)
class NextPoll:
    """When to poll next, and until when that poll may give its slot up (`spare_until`): an idle budget's
    reading — a poll not expected to find the task done — gives way to a create or to a poll that is; from the
    moment its task is expected done (its predicted end, or the median of the belief), it is a poll that is. A
    busy budget's polls are all aimed where their tasks are most likely done (None: never spare)."""

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


def next_poll(
    created_at: float,
    now: float,
    progress: int | None,
    durations: Durations,
    *,
    busy: bool,
    min_gap_s: float,
    max_gap_s: float | None = None,
    earlier: tuple[float, int] | None = None,
    deadline: float | None = None,
    limit_s: float | None = None,
    backlog_ends: float | None = None,
) -> NextPoll:
    """After a poll that found the task still processing. With progress reported (1–99 %), the end is predicted
    from it (and from the `earlier` (elapsed, progress) reading of the poll before, when there is one); without
    it, from the operation's durations among tasks that ran this long. Never sooner than `min_gap_s` after this
    poll, nor past `deadline` less DEADLINE_LEAD_S. Until two readings fit a curve, never later than the task's
    age after it (twice its age under a backlog). With an idle budget, never later than `max_gap_s` or a quarter
    of the task's age (an eighth when its progress stalled), so a wrong estimate loses little latency;
    and spare unless the poll is expected to find the task done. Never past `limit_s` after the create (the API's
    maximum processing time: the task has ended by then) while that is ahead, nor, under a backlog, past
    `backlog_ends` (when the create lane empties): a plan made for a busy budget is made again for the idle one
    that follows."""
    elapsed = max(0.0, now - created_at)
    fitted = stalled = False
    ends_at = math.inf  # the predicted end: a poll at or after it expects to find the task done
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        fitted = earlier is not None and 0 < earlier[0] < elapsed and 0 < earlier[1] < progress
        stalled = earlier is not None and earlier[1] == progress
        total = predicted_total(elapsed, progress, earlier)
        ends_at = created_at + total + ARRIVAL_MARGIN_S
        if not busy and earlier is None:
            # One reading cannot tell a curve from a line: a second one, half-way to the predicted end, can.
            total = max(elapsed + min_gap_s, elapsed + (total - elapsed) / 2)
        if busy:
            total = max(total * (1 + BUSY_MARGIN), durations.quantile_after(0.5, elapsed))
    else:
        total = durations.quantile_after(BUSY_QUANTILE if busy else IDLE_QUANTILE, elapsed)
        if not busy:
            # No progress shown yet: the task is in its first states, not near its end. Past every estimate, the
            # belief alone would look again every min gap (a 68 s task: 13 polls before its first progress).
            total = max(total, elapsed * 1.5)
    at = created_at + total + ARRIVAL_MARGIN_S
    if not busy and max_gap_s is not None:
        # Progress is a hint, not a clock: it may stall, jump or wobble, so a prediction from it is checked
        # again within a quarter of the task's age. A stall (the same percent twice) says nothing about when it
        # ends, and its jump to done may come at any moment: it is looked at every max gap while young, every
        # eighth of its age when old (a 170 s task stalled for 100 s was polled 43 times at 1 s).
        at = min(at, now + max(max_gap_s, elapsed * (STALLED_AGE_SHARE if stalled else IDLE_AGE_SHARE)))
    if not fitted:
        # One early reading can put the end far out (its curve unknown): the task is looked at again before it
        # has run twice as long — three times, under a backlog, where a poll saved is a create's slot. Two
        # readings fit the curve, and the prediction stands.
        at = min(at, now + max(min_gap_s, elapsed * (2 if busy else 1)))
    # And once more before the job's deadline.
    if deadline is not None and deadline - DEADLINE_LEAD_S > now + min_gap_s:
        at = min(at, deadline - DEADLINE_LEAD_S)
    if limit_s is not None and now < created_at + limit_s:
        # An early reading of a slow-starting task can predict 300 s: the API ends every task by its limit. Past
        # it by our clock (the API may count from another moment) it says nothing more: no poll every min gap.
        at = min(at, created_at + limit_s + ARRIVAL_MARGIN_S)
    if busy and backlog_ends is not None:
        # A busy budget spaces polls widely to leave slots to creates; once the last create has gone, those
        # slots are idle, and a task planned far past it would hold up the end of the whole burst.
        at = min(at, backlog_ends)
    at = max(now + min_gap_s, at)
    if busy:
        return NextPoll(at)
    if math.isinf(ends_at):
        # No progress to predict from: the task is more likely done than not past the belief's median.
        ends_at = created_at + durations.quantile_after(0.5, elapsed)
    return NextPoll(at, ends_at)


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


def completion_sample(
    created_at: float,
    last_seen_running: float | None,
    seen_done: float,
    api_created: float | None,
    api_completed: float | None,
) -> float:
    """The processing time of a task just seen done, by our clock. It ended after the last poll that saw it
    running (or its create) and before this one; the API's whole-second timestamps place it inside that window."""
    low = last_seen_running if last_seen_running is not None else created_at
    high = max(low, seen_done)
    if api_created is not None and api_completed is not None and api_completed >= api_created:
        guess = created_at + (api_completed - api_created)  # whole seconds both: the difference is unbiased
    else:
        guess = (low + high) / 2
    return min(high, max(low, guess)) - created_at
