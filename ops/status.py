"""`picwish-ops status`: uploads in flight (waiting for a create, processing), jobs ended in the window by outcome
and reason, the API calls, 429s and credits they spent, and when the create queue runs out — from the pipeline's
tally and its create lane (two DynamoDB tables), never by listing S3 or executions, so it answers as fast at
100,000 uploads as at ten."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from picwish_pipeline import budget, tally
from picwish_pipeline.scheduler.slot_table import SlotLimiter

from .target import Target


def status(target: Target, since: datetime, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    if not target.tasks_table:
        raise SystemExit("the stack names no task table (TasksTableName): update the stack")
    dynamodb = target.client("dynamodb")
    total, window = tally.read(dynamodb, target.tasks_table, since.timestamp(), now.timestamp())
    in_flight = total.get("started", 0) - total.get("ended", 0)
    processing = total.get("created", 0) - total.get("ended_created", 0)
    steps = {"waiting for a create": in_flight - processing, "processing": processing}
    failed = {name.removeprefix("reason#"): n for name, n in window.items() if name.startswith("reason#") and n}
    return {
        "since": since.isoformat(),
        "in_flight": {step: n for step, n in steps.items() if n},
        "in_flight_total": in_flight,
        "queue_ends_in_s": queue_ends_in(target, dynamodb, now) if steps["waiting for a create"] else None,
        "succeeded": window.get("outcome#succeeded", 0),
        "superseded": window.get("outcome#superseded", 0),
        "failed": dict(sorted(failed.items(), key=lambda item: -item[1])),
        "api_calls": window.get("api_calls", 0),
        "http_429": window.get("http_429", 0),
        "credits": window.get("credits", 0),
        "credit_budget": _budget(target, dynamodb, now),
        "backfill": backfill_progress(target, window),
        "dead_letters": dead_letters(target),
    }


def _budget(target: Target, dynamodb: Any, now: datetime) -> dict[str, int] | None:
    """Credits spent in the last 24 hours against the budget, as the creates reckon it (picwish_pipeline.budget)."""
    if not target.credit_budget or not target.tasks_table:
        return None
    since = now.timestamp() - budget.WINDOW_S + 3600
    _total, day = tally.read(dynamodb, target.tasks_table, since, now.timestamp())
    spent = day.get("credits", 0) + day.get("credits_undocumented", 0)
    return {"budget": target.credit_budget, "spent_24h": spent, "left": max(0, target.credit_budget - spent)}


def backfill_progress(target: Target, window: dict[str, int]) -> dict[str, Any] | None:
    """The latest backfill: its execution's status and its Map Run's item counts, and the window's decisions."""
    decided = {name.removeprefix("backfill#"): n for name, n in window.items() if name.startswith("backfill#")}
    if not target.backfill_machine_arn:
        return None
    sfn = target.client("stepfunctions")
    latest = sfn.list_executions(stateMachineArn=target.backfill_machine_arn, maxResults=1).get("executions", [])
    if not latest and not decided:
        return None
    progress: dict[str, Any] = {"decided": decided}
    if latest:
        progress |= {"execution": latest[0]["name"], "status": latest[0]["status"]}
        runs = sfn.list_map_runs(executionArn=latest[0]["executionArn"]).get("mapRuns", [])
        if runs:
            counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
            progress["items"] = {k: int(v) for k, v in counts.items() if k != "resultsWritten"}
    return progress


def queue_ends_in(target: Target, dynamodb: Any, now: datetime | None = None) -> float | None:
    """Seconds until the last create now queued goes out: the create lanes' end, where the pipeline itself
    placed it at the account's QPS."""
    now = now or datetime.now(UTC)
    if not target.rate_table:
        return None
    lane = SlotLimiter(target.rate_table, qps=1.0, client=dynamodb).schedule().queue_end
    return None if lane is None else round(max(0.0, lane - now.timestamp()), 1)


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
    if report["queue_ends_in_s"] is not None:
        lines.append(f"queue       the last queued create goes out in {_duration(report['queue_ends_in_s'])}")
    lines.append(f"succeeded   {report['succeeded']}")
    failed = report["failed"]
    lines.append(f"failed      {sum(failed.values())}" + "".join(f"\n  {n:>5}  {r}" for r, n in failed.items()))
    if report["superseded"]:
        lines.append(f"superseded  {report['superseded']} (a newer upload of the key replaced them)")
    lines.append(f"API calls   {report['api_calls']} ({report['http_429']} answered 429)")
    lines.append(f"credits     {report['credits']}")
    if report.get("credit_budget"):
        b = report["credit_budget"]
        lines.append(f"budget      {b['spent_24h']} of {b['budget']} credits spent in 24 h, {b['left']} left")
    if report.get("backfill"):
        lines.append(_backfill_line(report["backfill"]))
    if report["dead_letters"]:
        lines.append(f"dead letters {report['dead_letters']} (picwish-ops dlq shows them)")
    return "\n".join(lines)


def _backfill_line(progress: dict[str, Any]) -> str:
    items = progress.get("items") or {}
    head = f"backfill    {progress.get('execution', '')} {progress.get('status', '').lower()}".rstrip()
    if items:
        done, running, failed = (items.get(name, 0) for name in ("succeeded", "running", "failed"))
        head += f": {done} done, {running} running, {failed} failed"
    decided = ", ".join(f"{n} {what}" for what, n in sorted(progress.get("decided", {}).items()))
    return head + (f" (decided: {decided})" if decided else "")


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
