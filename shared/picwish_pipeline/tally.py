"""The running counts `picwish-ops status` reads instead of listing S3 (the tally): jobs started, tasks created,
jobs ended by outcome and reason, uploads refused, API calls, 429s and credits. ADD updates to two items of the
task table, one for all time and one for the hour; the in-flight counts are differences of the all-time ones.

Counts are at least once: a step retried after it counted (a Lambda dying between its write and its return)
counts again. A failed update is logged and never fails the job it counts."""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from .services import Services

logger = logging.getLogger(__name__)

PREFIX = "tally#"  # the tally's items in the task table, beside the executions' claims and the record locks
TOTAL = PREFIX + "total"
HOUR_PREFIX = PREFIX + "hour#"
TTL_S = 90 * 24 * 3600


def hour_key(at: float) -> str:
    return HOUR_PREFIX + time.strftime("%Y-%m-%dT%H", time.gmtime(at))


def started(svc: Services) -> None:
    count(svc, started=1)


def created(svc: Services, credits: int | None) -> None:
    """A task made: its credits are spent (an operation whose price the docs do not give counts apart)."""
    count(svc, created=1, **({"credits": credits} if credits is not None else {"credits_undocumented": 1}))


def refused(svc: Services, reason: str) -> None:
    """An upload submit turned down before anything started: it ends here, never in flight."""
    count(svc, refused=1, **{f"reason#{reason}": 1})


def ended(svc: Services, outcome: str, reason: str | None, *, task: bool, api_calls: Any, throttled: Any) -> None:
    """A started job's end: its outcome (succeeded, failed, superseded), why it failed, whether it had made a task,
    and the API calls and 429s it spent."""
    counts = {"ended": 1, f"outcome#{outcome}": 1, "api_calls": int(api_calls or 0), "http_429": int(throttled or 0)}
    if reason and outcome == "failed":
        counts[f"reason#{reason}"] = 1
    if task:
        counts["ended_created"] = 1
    count(svc, **counts)


def count(svc: Services, **counts: int) -> None:
    """ADD `counts` to the all-time item and to this hour's."""
    names = {f"#n{i}": name for i, name in enumerate(counts)}
    values: dict[str, Any] = {f":v{i}": {"N": str(int(n))} for i, n in enumerate(counts.values())}
    values[":ttl"] = {"N": str(int(svc.clock()) + TTL_S)}
    update = "ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(counts))) + " SET expires_at = :ttl"
    for key in (TOTAL, hour_key(svc.clock())):
        try:
            svc.dynamodb.update_item(
                TableName=svc.settings.tasks_table,
                Key={"execution": {"S": key}},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            logger.warning("tally not updated", extra={"item": key, "error": exc.response["Error"]["Code"]})


def read(dynamodb: Any, table: str, since: float, now: float) -> tuple[dict[str, int], dict[str, int]]:
    """(all-time counts, counts of the hours from `since`'s to `now`'s)."""
    hours = [hour_key(at) for at in range(int(since) // 3600 * 3600, int(now) + 1, 3600)]
    keys = [TOTAL, *hours]
    found: dict[str, dict[str, int]] = {}
    for first in range(0, len(keys), 100):
        batch = {table: {"Keys": [{"execution": {"S": k}} for k in keys[first : first + 100]], "ConsistentRead": True}}
        while batch:
            answer = dynamodb.batch_get_item(RequestItems=batch)
            for item in answer["Responses"].get(table, []):
                found[item["execution"]["S"]] = {
                    name: int(value["N"]) for name, value in item.items() if "N" in value and name != "expires_at"
                }
            batch = answer.get("UnprocessedKeys") or {}
    window: dict[str, int] = {}
    for hour in hours:
        for name, n in found.get(hour, {}).items():
            window[name] = window.get(name, 0) + n
    return found.get(TOTAL, {}), window
