"""`picwish-ops status`: uploads in flight by step, jobs ended in the window (succeeded, failed by reason), the
oldest in flight, and the API calls and 429s the ended jobs spent — from the records in the output bucket and
the running executions."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from picwish_pipeline.uploads import FAILED, RESULTS

from .target import Target

# Where a running execution is, by the state it last entered (statemachine/definition.py).
STEPS = {
    "CreateTask": "waiting for a slot",
    "Created?": "waiting for a slot",
    "WaitForCreateSlot": "waiting for a slot",
    "WaitForFirstPoll": "processing",
    "PollTask": "processing",
    "Done?": "processing",
    "WaitForNextPoll": "processing",
    "Finalize": "finalizing",
    "Stored?": "finalizing",
    "RecordFailure": "recording a failure",
    "Recorded?": "recording a failure",
}


KINDS = {"results": (RESULTS, "/result.json"), "failures": (FAILED, ".json")}  # where picwish_pipeline writes them


def records(target: Target, s3: Any, since: datetime, kinds: tuple[str, ...] = tuple(KINDS)) -> list[dict[str, Any]]:
    """The result.json and failure records (`kinds`) written since `since`."""
    found = []
    for prefix, wanted in (KINDS[kind] for kind in kinds):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.output_bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(wanted) and obj["LastModified"] >= since:
                    body = s3.get_object(Bucket=target.output_bucket, Key=obj["Key"])["Body"].read()
                    found.append(json.loads(body))
    return found


def in_flight(target: Target, sfn: Any) -> list[dict[str, Any]]:
    """Each running execution: its name, upload key, start and the step it is in."""
    running = []
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=target.state_machine_arn, statusFilter="RUNNING"
    )
    for page in pages:
        for execution in page["executions"]:
            arn = execution["executionArn"]
            history = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=20)["events"]
            entered = [e for e in history if e["type"].endswith("StateEntered")]
            last = max(entered, key=lambda e: e["id"])["stateEnteredEventDetails"]["name"] if entered else None
            started = sfn.describe_execution(executionArn=arn)
            job = json.loads(started.get("input") or "{}").get("job") or {}
            running.append(
                {
                    "execution": execution["name"],
                    "upload": (job.get("upload") or {}).get("key"),
                    "started": execution["startDate"],
                    "step": STEPS.get(last or "", "starting"),
                }
            )
    return running


def status(target: Target, since: datetime, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    s3, sfn = target.client("s3"), target.client("stepfunctions")
    ended = records(target, s3, since)
    running = in_flight(target, sfn)
    oldest = min(running, key=lambda r: r["started"], default=None)
    failed = Counter(r.get("reason") or "unknown" for r in ended if r.get("outcome") == "failed")
    return {
        "since": since.isoformat(),
        "in_flight": dict(Counter(r["step"] for r in running)),
        "in_flight_total": len(running),
        "oldest_in_flight": None
        if oldest is None
        else {
            "upload": oldest["upload"],
            "execution": oldest["execution"],
            "step": oldest["step"],
            "age_s": round((now - oldest["started"]).total_seconds(), 1),
        },
        "succeeded": sum(1 for r in ended if r.get("outcome") == "succeeded"),
        "failed": dict(failed.most_common()),
        "api_calls": sum(int(r.get("api_calls") or 0) for r in ended),
        "http_429": sum(int(r.get("throttled") or 0) for r in ended),
        "dead_letters": dead_letters(target),
    }


def dead_letters(target: Target) -> int | None:
    """Messages in the dead-letter queue, hidden ones included (None: the stack names no queue)."""
    if not target.dead_letter_queue_url:
        return None
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = target.client("sqs").get_queue_attributes(QueueUrl=target.dead_letter_queue_url, AttributeNames=names)
    return sum(int(found["Attributes"].get(name, 0)) for name in names)


def render(report: dict[str, Any]) -> str:
    lines = [f"since {report['since']}"]
    steps = ", ".join(f"{n} {step}" for step, n in sorted(report["in_flight"].items())) or "none"
    lines.append(f"in flight   {report['in_flight_total']} ({steps})")
    oldest = report["oldest_in_flight"]
    if oldest:
        lines.append(f"oldest      {oldest['upload']} — {oldest['age_s']} s, {oldest['step']}")
    lines.append(f"succeeded   {report['succeeded']}")
    failed = report["failed"]
    lines.append(f"failed      {sum(failed.values())}" + "".join(f"\n  {n:>5}  {r}" for r, n in failed.items()))
    lines.append(f"API calls   {report['api_calls']} ({report['http_429']} answered 429)")
    if report["dead_letters"]:
        lines.append(f"dead letters {report['dead_letters']} (picwish-ops dlq shows them)")
    return "\n".join(lines)
