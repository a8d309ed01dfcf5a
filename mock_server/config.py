"""The mock's settings: keys, QPS, result TTL, time scale, processing times; defaults, environment, arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from picwish_visual.catalog import OPERATIONS
from picwish_visual.states import MAX_PROCESSING_S

ENV_HOST = "PICWISH_MOCK_HOST"
ENV_PORT = "PICWISH_MOCK_PORT"
ENV_API_KEYS = "PICWISH_MOCK_API_KEYS"  # comma-separated
ENV_QPS = "PICWISH_MOCK_QPS"
ENV_RESULT_TTL = "PICWISH_MOCK_RESULT_TTL_S"
ENV_TIME_SCALE = "PICWISH_MOCK_TIME_SCALE"
ENV_ADMIN = "PICWISH_MOCK_ADMIN"
ENV_ERRORS_IN_BODY = "PICWISH_MOCK_ERRORS_IN_BODY"
ENV_PUBLIC_URL = "PICWISH_MOCK_PUBLIC_URL"

DEFAULT_API_KEY = "mock-key-1"


@dataclass(frozen=True)
class MockConfig:
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    qps: float = 2.0  # per key, rolling one-second window; 0 disables the limit
    result_ttl_s: float = 3600.0
    time_scale: float = 1.0  # multiplies every processing time and the 180 s processing limit
    admin: bool = False  # the /__mock__/ scenario API: it resets the mock and shows live links, so only on request
    errors_in_body: bool = False  # errors as HTTP 200 with the error status in the body, as the real API may
    public_url: str | None = None  # base of result links; default: the URL the request came in on
    download_timeout_s: float = 10.0  # image_url / mask_url fetches, as documented
    max_processing_s: float = MAX_PROCESSING_S  # past this a task ends in -8, as documented
    sync_wait_cap_s: float = 200.0  # a sync request never holds a thread longer than this (scaled)
    # Random faults on API calls, by rate: "500", "429", "429-body" (in an HTTP 200), "truncate" (a body cut
    # off mid-way, as a dropped connection leaves it), "slow" (answers after `slow_s`).
    chaos: Mapping[str, float] = field(default_factory=dict)
    chaos_seed: int = 1
    slow_s: float = 3.0
    # Results are rendered from inputs scaled down to this many pixels on their longer side (None: full size).
    # Rendering is CPU the real API spends elsewhere; a load test of the pipeline sets it so the mock is not
    # what it measures.
    render_max_side: int | None = None
    processing_s: Mapping[str, float] = field(
        default_factory=lambda: {name: op.typical_processing_s for name, op in OPERATIONS.items()}
    )

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> MockConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get(ENV_API_KEYS):
            values["api_keys"] = tuple(k.strip() for k in env[ENV_API_KEYS].split(",") if k.strip())
        for name, var, conv in (
            ("qps", ENV_QPS, float),
            ("result_ttl_s", ENV_RESULT_TTL, float),
            ("time_scale", ENV_TIME_SCALE, float),
            ("public_url", ENV_PUBLIC_URL, str),
        ):
            if env.get(var):
                values[name] = conv(env[var])
        for name, var in (("admin", ENV_ADMIN), ("errors_in_body", ENV_ERRORS_IN_BODY)):
            if env.get(var):
                values[name] = env[var].strip().lower() in ("1", "true", "yes", "on")
        return replace(cls(**values), **{k: v for k, v in overrides.items() if v is not None})
