"""The belief about an operation's processing time (a lognormal, learned from the tasks seen done) and the
completion sample each done task adds to it. Pure functions of numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

LEARNING_RATE = 0.2  # weight of the newest completion: about the last ten tasks of an operation count
PRIOR_SIGMA = 0.6  # spread (of log seconds) assumed before any task of the operation has completed
MIN_SIGMA = 0.1
OUTLIER_SIGMAS = 2.5  # a sample's pull on the belief is capped at this many of its sigmas
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
