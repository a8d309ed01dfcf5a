"""What every step is given: the settings and the AWS clients, the API key, and a clock, sleep and jitter that
tests replace."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import PipelineSettings
from .scheduler.slot_table import SlotLimiter

if TYPE_CHECKING:
    import requests

    from picwish_visual.client import PicWishClient


class TransientApiError(Exception):
    """The API could not be reached or answered 5xx on a poll: the state machine retries with backoff."""


def _no_api_key() -> str:
    raise RuntimeError("these services were built without an API key source")


@dataclass
class Services:
    settings: PipelineSettings
    s3: Any
    sfn: Any = None
    dynamodb: Any = None
    api_key: Callable[[bool], str] = field(default=lambda refresh: _no_api_key())  # refresh -> key
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random  # the randomness of backoffs, fixed by tests
    http: requests.Session | None = None  # one connection pool per sandbox, made by the first API call

    def client(self, *, refresh: bool = False) -> PicWishClient:
        # Imported here: of the six functions only create and poll call the API (finalize downloads results).
        import requests

        from picwish_visual.client import PicWishClient

        if self.http is None:
            self.http = requests.Session()
        # Retries belong to the state machine, so the client makes exactly one call per step.
        return PicWishClient(self.api_key(refresh), settings=self.settings.client, session=self.http, max_retries=0)

    def limiter(self) -> SlotLimiter:
        return SlotLimiter(self.settings.rate_table, self.settings.qps, self.dynamodb, clock=self.clock)
