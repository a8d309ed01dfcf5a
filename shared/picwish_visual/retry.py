"""The one retry decision and the backoff it waits, with the randomness isolated so tests can fix it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import APIConnectionError, APIServerError, PicWishError, RateLimitError

Jitter = Callable[[], float]  # returns a number in [0, 1)
MAX_RETRY_AFTER_S = 60.0  # a Retry-After beyond this (a day, "inf") is taken as this: no call waits unbounded


def should_retry(error: PicWishError, *, is_create: bool) -> bool:
    """Whether repeating the same call is both useful and safe.

    A create must never be repeated when the API may already have made (and billed) the task: after a 5xx
    answer or once the request reached the server. A 429 creates nothing, and a connection that never
    opened sent nothing, so those are safe for every call.
    """
    if isinstance(error, RateLimitError):
        return True
    if isinstance(error, APIConnectionError):
        return not (is_create and error.request_sent)
    if isinstance(error, APIServerError):
        return not is_create
    return False


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog), never shorter than a Retry-After."""

    base_s: float = 0.5
    cap_s: float = 20.0
    jitter: Jitter = random.random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * (2**attempt))
        jittered = self.jitter() * ceiling
        # Retry-After is a floor: waiting exactly that long makes every waiting client return in the same tick.
        return (retry_after + jittered) if retry_after else jittered


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as delta-seconds; HTTP dates are not sent by this API."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative: no usable advice
        return None
    return min(seconds, MAX_RETRY_AFTER_S)
