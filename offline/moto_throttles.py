"""Step Functions' StartExecution quota, which moto does not apply: a token bucket per stack (AWS refills about 300
starts a second after a burst of 1,300 in the largest regions, fewer elsewhere), past which StartExecution answers
`ThrottlingException`. The local stack and its tests set a small bucket to meet the throttle at a small scale."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from moto.core.exceptions import AWSError
from moto.stepfunctions.responses import StepFunctionResponse

_LOCK = threading.Lock()
_original_start = StepFunctionResponse.start_execution


class StartThrottled(AWSError):
    TYPE = "ThrottlingException"
    STATUS = 400


class StartQuota:
    """`burst` starts at once, then `per_second`; `throttled` counts the starts refused."""

    def __init__(self, burst: int, per_second: float, on_throttle: Callable[[], None] | None = None) -> None:
        self.burst, self.per_second, self.on_throttle = burst, per_second, on_throttle
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.throttled = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens < 1:
            self.throttled += 1
            if self.on_throttle is not None:
                self.on_throttle()
            return False
        self.tokens -= 1
        return True


_QUOTA: list[StartQuota] = []


def _start_execution(self: Any) -> Any:
    with _LOCK:
        admitted = not _QUOTA or _QUOTA[0].take()
    if not admitted:
        raise StartThrottled("Rate exceeded")
    return _original_start(self)


def limit_start_executions(burst: int, per_second: float, on_throttle: Callable[[], None] | None = None) -> StartQuota:
    """From now on StartExecution is admitted as the quota allows (until `lift_start_limit`; a local stack lifts
    it when it stops)."""
    quota = StartQuota(burst, per_second, on_throttle)
    with _LOCK:
        _QUOTA[:] = [quota]
        StepFunctionResponse.start_execution = _start_execution
    return quota


def lift_start_limit() -> None:
    with _LOCK:
        _QUOTA.clear()
