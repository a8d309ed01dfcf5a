"""What every step is given: the settings and the AWS clients, the API key, and a clock, sleep and jitter that
tests replace."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from picwish.client import PicWishClient

from .config import PipelineSettings
from .ratelimit import SlotLimiter


class TransientApiError(Exception):
    """The API could not be reached or answered 5xx on a poll: the state machine retries with backoff."""


@dataclass
class Services:
    settings: PipelineSettings
    s3: Any
    sfn: Any = None
    dynamodb: Any = None
    api_key: Callable[[bool], str] | None = None  # refresh -> key
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random  # the randomness of backoffs, fixed by tests
    http: requests.Session = field(default_factory=requests.Session)

    def client(self, *, refresh: bool = False) -> PicWishClient:
        # Retries belong to the state machine, so the client makes exactly one call per step.
        return PicWishClient(self.api_key(refresh), settings=self.settings.client, session=self.http, max_retries=0)

    def limiter(self) -> SlotLimiter:
        return SlotLimiter(self.settings.rate_table, self.settings.qps, self.dynamodb, clock=self.clock)
