"""`picwish-ops backfill PREFIX`: process the images already under `incoming/PREFIX`. The bill comes first — what
would be processed and skipped (and why), the credits by operation, the hours at the account's QPS behind the
creates already queued, and the AWS cost — from the same decision the backfill machine makes for each image;
then the machine (a Distributed Map over the prefix) admits each image to the pipeline."""

from __future__ import annotations

import collections
import json
import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from picwish_pipeline.backfill import SKIP, Decision, decide
from picwish_pipeline.create import CREATE_LANE_GAP
from picwish_pipeline.scheduler.slot_table import SlotLimiter
from picwish_pipeline.uploads import INCOMING

from . import costs
from .target import Target

PROGRESS_EVERY = 500
READERS = 16  # keys decided at once by the dry run (boto3 clients are thread-safe)
JOB_LIFE_S = 30  # a job's time from its create to its record, at the API's typical processing times


@dataclass(frozen=True)
class Bill:
    """A backfill's decisions, and what carrying them out costs."""

    prefix: str
    decisions: list[Decision]
    sizes: dict[str, int]  # key -> bytes, as listed
    qps: float
    queued_s: float  # until the creates already queued have gone out

    @property
    def processed(self) -> list[Decision]:
        return [d for d in self.decisions if d.action != SKIP]

    def summary(self, live_share: float = 0.0) -> dict[str, Any]:
        credits: collections.Counter[str] = collections.Counter()
        undocumented: collections.Counter[str] = collections.Counter()
        for d in self.processed:
            if d.credits is None:
                undocumented[str(d.operation)] += 1
            else:
                credits[str(d.operation)] += d.credits
        pace = backfill_pace(self.qps, live_share)
        images = len(self.processed)
        return {
            "prefix": self.prefix,
            "listed": len(self.decisions),
            "process": collections.Counter(d.action for d in self.processed),
            "skip": collections.Counter(d.why for d in self.decisions if d.action == SKIP),
            "credits": sum(credits.values()),
            "credits_by_operation": dict(sorted(credits.items())),
            "images_of_undocumented_price": dict(sorted(undocumented.items())),
            "queued_ahead_s": round(self.queued_s),
            "eta_s": round(self.queued_s + images / pace) if images else 0,
            "aws_usd": costs.aws_cost(images, sum(self.sizes.get(d.key, 0) for d in self.processed)),
        }


def listing(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Every key under the prefix, with its size (ListObjectsV2, as the backfill machine reads it)."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({obj["Key"]: int(obj.get("Size", 0)) for obj in page.get("Contents", [])})
    return found


def plan(
    target: Target, s3: Any, prefix: str, *, reprocess: bool, progress: Callable[[str], None] | None = None
) -> tuple[list[Decision], dict[str, int]]:
    """What the backfill would do with each key under `incoming/<prefix>`, decided as the machine decides (a few
    S3 reads a key, READERS at a time: 100,000 keys are minutes, not hours)."""
    sizes = listing(s3, target.input_bucket, full_prefix(prefix))

    def one(key: str) -> Decision:
        return decide(s3, target.input_bucket, target.output_bucket, key, reprocess=reprocess)

    decisions = []
    with ThreadPoolExecutor(READERS) as pool:
        for number, decision in enumerate(pool.map(one, sorted(sizes)), 1):
            decisions.append(decision)
            if progress and number % PROGRESS_EVERY == 0:
                progress(f"{number} of {len(sizes)} judged")
    return decisions, sizes


def full_prefix(prefix: str) -> str:
    """`idphoto/2024/` and `incoming/idphoto/2024/` name the same place."""
    return prefix if prefix.startswith(INCOMING) else INCOMING + prefix.lstrip("/")


def backfill_pace(qps: float, live_share: float) -> float:
    """The backfill lane's creates a second: the create lane's share of the budget, less the uploads' share."""
    return qps * SlotLimiter.headroom / CREATE_LANE_GAP * (1 - live_share)


def jobs_for(target: Target) -> int:
    """Jobs in flight that keep the backfill's create lane busy (its creates a second times a job's life), but
    at most half of each function's concurrency where the stack bounds it (the local stack's sandboxes): a job
    holds one invocation at a time, so half the invocations stay free for new uploads."""
    busy = max(4, math.ceil(backfill_pace(target.qps, target.live_share) * JOB_LIFE_S))
    if target.lambda_concurrency:
        return max(1, min(busy, target.lambda_concurrency // 2))
    return busy


def start(target: Target, sfn: Any, prefix: str, *, reprocess: bool, jobs: int | None = None) -> str:
    """Start the backfill machine over the prefix, with at most `jobs` of its jobs in flight (default: as many as
    keep its create lane busy); its execution ARN."""
    if not target.backfill_machine_arn:
        raise SystemExit("the stack names no backfill machine (BackfillStateMachineArn): update the stack")
    name = f"backfill-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    execution_input = {
        "bucket": target.input_bucket,
        "prefix": full_prefix(prefix),
        "reprocess": reprocess,
        "jobs": jobs or jobs_for(target),
    }
    started = sfn.start_execution(
        stateMachineArn=target.backfill_machine_arn, name=name, input=json.dumps(execution_input)
    )
    return str(started["executionArn"])


def render(summary: dict[str, Any]) -> str:
    process, skip = summary["process"], summary["skip"]
    lines = [f"{summary['listed']} objects under {summary['prefix']}"]
    lines.append(f"process     {sum(process.values())} ({', '.join(f'{n} {a}' for a, n in sorted(process.items()))})")
    lines.extend(f"skip  {n:>5}  {why}" for why, n in sorted(skip.items(), key=lambda item: -item[1]))
    by_op = ", ".join(f"{op} {n}" for op, n in summary["credits_by_operation"].items())
    lines.append(f"credits     {summary['credits']}" + (f" ({by_op})" if by_op else ""))
    for op, n in summary["images_of_undocumented_price"].items():
        lines.append(f"            + {n} images of {op} (the docs give no price)")
    ahead = summary["queued_ahead_s"]
    behind = f", behind {_duration(ahead)} of creates already queued" if ahead else ""
    lines.append(f"time        {_duration(summary['eta_s'])} at the account's QPS{behind}")
    lines.append(f"AWS         ${summary['aws_usd']['total']:.2f} (state transitions, Lambda, DynamoDB, S3, transfer)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(1, math.ceil(seconds / 60))} min"
