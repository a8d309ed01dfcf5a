"""The pipeline's environment variables (set by template.yaml on each function), named once here, read once,
overridable by explicit arguments. Powertools reads its own POWERTOOLS_* variables."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from picwish_visual.config import ClientSettings

ENV_API_KEY_SECRET = "PICWISH_API_KEY_SECRET"  # Secrets Manager name or ARN
ENV_STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
ENV_OUTPUT_BUCKET = "OUTPUT_BUCKET"
ENV_TASKS_TABLE = "TASKS_TABLE"
ENV_RATE_TABLE = "RATE_TABLE"
ENV_QPS = "PICWISH_QPS"
ENV_INPUT_MODE = "INPUT_MODE"  # "url" (presigned GET, default) or "bytes" (multipart upload)
ENV_DEADLINES = "DEADLINES_JSON"  # {"idphoto": 240, ...} seconds from task creation
ENV_OPERATION_DEFAULTS = "OPERATION_DEFAULTS_JSON"
ENV_WAIT_SCALE = "WAIT_SCALE"  # multiplies expected processing times (the offline mock runs faster)
ENV_MAX_THROTTLES = "MAX_THROTTLES"  # 429s one job may meet before it ends in a failure record
ENV_PRESIGN_EXPIRY = "PRESIGN_EXPIRY_S"
ENV_CREDIT_BUDGET = "CREDIT_BUDGET_PER_DAY"  # credits in any 24 hours; 0: none
ENV_BUDGET_RECHECK = "BUDGET_RECHECK_S"  # how often a create held by the budget looks again
ENV_LIVE_SHARE = "LIVE_UPLOAD_SHARE"  # of the create lane, kept for uploads while a backfill runs
# "true": X-Ray subsegments for each AWS and API call (the X-Ray SDK adds ~150 ms to every cold start)
ENV_TRACE_CALLS = "TRACE_CALLS"

DEFAULT_DEADLINE_S = 240.0  # the API's 180 s maximum processing time plus room for polling


@dataclass(frozen=True)
class PipelineSettings:
    client: ClientSettings = field(default_factory=ClientSettings)
    state_machine_arn: str = ""
    output_bucket: str = ""
    tasks_table: str = ""
    rate_table: str = ""
    api_key_secret: str = ""
    qps: float = 2.0
    input_mode: str = "url"
    deadlines: Mapping[str, float] = field(default_factory=dict)
    operation_defaults: str = ""
    wait_scale: float = 1.0
    max_throttles: int = 60
    presign_expiry_s: int = 900
    trace_calls: bool = False
    credit_budget: int = 0
    budget_recheck_s: int = 300
    live_share: float = 0.25

    def deadline_for(self, operation: str) -> float:
        return float(self.deadlines.get(operation, DEFAULT_DEADLINE_S))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> PipelineSettings:
        env = os.environ if environ is None else environ
        input_mode = env.get(ENV_INPUT_MODE, "url").strip().lower() or "url"
        if input_mode not in ("url", "bytes"):
            raise ValueError(f"{ENV_INPUT_MODE} must be url or bytes; got {input_mode!r}")
        deadlines = json.loads(env[ENV_DEADLINES]) if env.get(ENV_DEADLINES, "").strip() else {}
        settings = cls(
            client=ClientSettings.from_env(env),
            state_machine_arn=env.get(ENV_STATE_MACHINE_ARN, ""),
            output_bucket=env.get(ENV_OUTPUT_BUCKET, ""),
            tasks_table=env.get(ENV_TASKS_TABLE, ""),
            rate_table=env.get(ENV_RATE_TABLE, ""),
            api_key_secret=env.get(ENV_API_KEY_SECRET, ""),
            qps=float(env.get(ENV_QPS) or 2.0),
            input_mode=input_mode,
            deadlines={k: float(v) for k, v in deadlines.items()},
            operation_defaults=env.get(ENV_OPERATION_DEFAULTS, ""),
            wait_scale=float(env.get(ENV_WAIT_SCALE) or 1.0),
            max_throttles=int(env.get(ENV_MAX_THROTTLES) or 60),
            presign_expiry_s=int(env.get(ENV_PRESIGN_EXPIRY) or 900),
            trace_calls=env.get(ENV_TRACE_CALLS, "").strip().lower() == "true",
            credit_budget=int(float(env.get(ENV_CREDIT_BUDGET) or 0)),
            budget_recheck_s=int(env.get(ENV_BUDGET_RECHECK) or 300),
            live_share=float(env.get(ENV_LIVE_SHARE) or 0.25),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
