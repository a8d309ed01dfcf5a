"""Turning a run into figures: outcomes per upload, tasks paid per upload key (in either input mode), polls, 429s,
latency and overhead (and how far one run's quantiles can be trusted), state transitions, the cost per 1,000 images
with every line that is billed, and the spread and pooled figures of several runs."""

from __future__ import annotations

import bisect
import collections
import itertools
import math
from collections.abc import Callable, Iterable
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlsplit

from ops.costs import PRICES

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
S3_PUTS = {"PutObject", "CopyObject", "ListObjectsV2", "DeleteObject"}
SUMMARY_FIELDS = (
    "lost",
    "duplicate_tasks",
    "dead_letters",
    "throughput_share_of_ceiling",
    "sustained_share_of_ceiling",
    "bound_share_of_ceiling",
    "qps_utilization",
    "polls_per_image",
    "http_429_share",
    "state_transitions_per_image",
    "overhead_p50_s",
    "overhead_p95_s",
    "wall_s",
)


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def quantile_interval(values: Iterable[float], q: float, level: float = 0.9) -> tuple[float | None, float | None]:
    """Where the q-quantile of the distribution the values were drawn from lies, with probability `level`: two
    of the values themselves (order statistics), chosen from the binomial law of how many fall below the quantile;
    no assumption on the distribution. None where the values cannot bound it: 40 values bound a p95 from below
    only, as each of them is below the true p95 with probability 0.95^40 = 13 %, not under 5 %."""
    ordered = sorted(values)
    n, tail = len(ordered), (1 - level) / 2
    # P(exactly k values below it), in logs: math.comb(2000, 1000) is past the largest float
    below = [
        math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(q)
            + (n - k) * math.log1p(-q)
        )
        for k in range(n + 1)
    ]
    cdf = list(itertools.accumulate(below))
    # The k-th smallest value (1-based) is above the quantile when fewer than k values are below it: P = cdf[k - 1].
    low = max((k for k in range(1, n + 1) if cdf[k - 1] <= tail), default=None)
    # The u-th smallest is below it when at least u values are: P = 1 - cdf[u - 1].
    high = min((u for u in range(1, n + 1) if 1 - cdf[u - 1] <= tail), default=None)
    return (
        None if low is None else round(ordered[low - 1], 3),
        None if high is None else round(ordered[high - 1], 3),
    )


def sustained_rate(moments: Iterable[float]) -> float | None:
    """Events per second between the 10th and the 90th percent of them: the rate held in the middle of a run,
    without its start-up and without a slow task's last events minutes on. None for fewer than ten events or a
    middle of no length."""
    ordered = sorted(moments)
    low, high = int(0.1 * len(ordered)), int(0.9 * len(ordered))
    if len(ordered) < 10 or ordered[high] <= ordered[low]:
        return None
    return (high - low) / (ordered[high] - ordered[low])


def upload_key_of(entry: dict, by_digest: dict[str, str]) -> str | None:
    """The upload a create was for: its presigned URL's path and version (url mode) or its file's digest (bytes
    mode). Two versions of one key are two uploads, each paid for at most once."""
    fields = entry.get("fields") or {}
    url = fields.get("image_url")
    if url:
        parts = urlsplit(url)
        path = unquote(parts.path)
        version = parse_qs(parts.query).get("versionId")
        key = path.split("/", 2)[2] if path.count("/") >= 2 else None
        return f"{key}@{version[0]}" if key and version else key
    part = fields.get("image_file") or {}
    return by_digest.get(part.get("sha256", ""))


def paid_per_upload(journal: list[dict], key_of: Callable[[dict], str | None]) -> collections.Counter:
    """Tasks the API made (a create answered 200 with a task id), per upload key; None: creates of no known upload."""
    return collections.Counter(
        key_of(e) for e in journal if e["method"] == "POST" and e["status"] == 200 and e.get("task_id")
    )


def duplicate_tasks(paid: collections.Counter) -> int:
    return sum(count - 1 for key, count in paid.items() if count > 1) + paid.get(None, 0)


def written_at(record: dict) -> float:
    stamp = (record.get("timestamps") or {}).get("result_written") or record.get("recorded_at")
    return datetime.fromisoformat(stamp).timestamp() if stamp else record["_seen"]


def outcomes(keys: list[str], records: dict[str, dict]) -> dict[str, int]:
    succeeded = sum(1 for k in keys if records.get(k, {}).get("outcome") == "succeeded")
    failed = sum(1 for k in keys if records.get(k, {}).get("outcome") == "failed")
    return {"succeeded": succeeded, "failed": failed, "lost": len(keys) - succeeded - failed}


def overheads(records: dict[str, dict], task_times: dict[str, dict]) -> list[float]:
    """From the moment the API finished a task to the moment its result record was written."""
    found = []
    for record in records.values():
        task = task_times.get(record.get("task_id") or "")
        written = (record.get("timestamps") or {}).get("result_written")
        if record.get("outcome") == "succeeded" and task and task.get("completed") and written:
            found.append(datetime.fromisoformat(written).timestamp() - task["completed"])
    return found


def overhead_split(
    records: dict[str, dict], task_times: dict[str, dict], journal: list[dict]
) -> tuple[list[float], list[float]]:
    """Each overhead in two parts: from the task's end to the poll that saw it done (the detection lag: poll
    timing and the QPS budget), and from that poll to the result record (the state machine and finalize)."""
    seen_done: dict[str, float] = {}
    for entry in journal:
        task = task_times.get(entry.get("task_id") or "")
        if entry["method"] == "GET" and entry["status"] == 200 and task and task.get("completed"):
            at = entry.get("counted_at") or entry["time"]
            if at >= task["completed"] and at < seen_done.get(entry["task_id"], math.inf):
                seen_done[entry["task_id"]] = at
    lags, after = [], []
    for record in records.values():
        task_id = record.get("task_id") or ""
        written = (record.get("timestamps") or {}).get("result_written")
        if record.get("outcome") == "succeeded" and task_id in seen_done and written:
            lags.append(seen_done[task_id] - task_times[task_id]["completed"])
            after.append(datetime.fromisoformat(written).timestamp() - seen_done[task_id])
    return lags, after


def foresight_lags(journal: list[dict], task_times: dict[str, dict], qps: float) -> list[float]:
    """The detection lags of a poll timing that knew when every task would end: with this run's creates where
    they went (by the API's clock), each task that ended gets one poll, at the first moment at or after its end
    that the API's rolling one-second window allows, tasks served in the order they ended. What the run's own
    lags lose against these is the cost of not knowing the ends (and of the polls that read progress); where
    these are long too, the budget itself was short."""
    calls = sorted(e.get("counted_at") or e["time"] for e in journal if e["method"] == "POST" and e.get("task_id"))
    ends = sorted(t["completed"] for t in task_times.values() if t.get("completed") is not None)
    per_window = max(1, math.ceil(qps))  # the API admits a call while the second before it holds fewer than qps
    lags = []
    for end in ends:
        at = _first_admitted(calls, end, per_window)
        bisect.insort(calls, at)
        lags.append(at - end)
    return lags


def _first_admitted(calls: list[float], start: float, per_window: int) -> float:
    """The earliest moment at or after `start` where one more call keeps every second within `per_window` calls:
    `start` itself, or just after a call leaves the window of a moment."""
    low = bisect.bisect_left(calls, start - 1.0)
    for at in sorted([start, *(c + 1.0 + 1e-6 for c in calls[low:] if c + 1.0 > start)]):
        i = bisect.bisect_left(calls, at)
        near = [*calls[max(0, i - per_window) : i], at, *calls[i : i + per_window]]
        k = min(i, per_window)  # where `at` is in `near`
        # Any per_window + 1 calls in a row must span a second, or the last of them is refused.
        rows = range(max(0, k - per_window), min(k, len(near) - per_window - 1) + 1)
        if all(near[j + per_window] - near[j] >= 1.0 for j in rows):
            return at
    raise AssertionError("unreachable: a moment a second after the last call is always admitted")


def bound_wall_s(journal: list[dict], task_times: dict[str, dict], qps: float) -> float | None:
    """The shortest run any pipeline could have made of this workload, creating its tasks in the order this run
    did: every upload needs a create and a poll (2 calls each at `qps`), and the k-th create goes out no sooner
    than k / qps with its task done `processing` after that. A heavy-tailed task created late sets this bound;
    no poll timing can beat it, so the whole-run throughput is read against it."""
    order = sorted((e["time"], e["task_id"]) for e in journal if e["method"] == "POST" and e.get("task_id"))
    spans = []
    for k, (_, task_id) in enumerate(order):
        task = task_times.get(task_id) or {}
        if task.get("completed") and task.get("created"):
            spans.append(k / qps + task["completed"] - task["created"])
    if not spans:
        return None
    return max(2 * len(order) / qps, *spans)


def cost_per_1000(counts: dict[str, float], n: int, *, credits: int, credit_price: float) -> dict[str, float]:
    lines = {k: round(counts[k] * PRICES[k] / n * 1000, 5) for k in PRICES}
    aws = round(sum(lines.values()), 4)
    api = round(credits * credit_price / n * 1000, 4)
    return {**lines, "aws_total": aws, "api_credits": api, "total": round(aws + api, 4)}


def verdict(report: dict) -> list[str]:
    """What makes `--check` fail: any upload lost or paid twice, or a crash window the run never hit."""
    problems = []
    if report["lost"]:
        problems.append(f"{report['lost']} uploads ended without a record")
    if report["duplicate_tasks"]:
        problems.append(f"{report['duplicate_tasks']} tasks paid twice")
    if report.get("dead_letters"):
        problems.append(f"{report['dead_letters']} events left in the dead-letter queue")
    if report.get("stale_records"):
        problems.append(f"{report['stale_records']} keys uploaded again ended in a record not of their newest version")
    missed = [name for name, count in report.get("crashes_injected", {}).items() if count == 0]
    if missed:
        problems.append(f"crash windows never hit: {', '.join(missed)}")
    return problems


def summary(reports: list[dict]) -> dict:
    """Each figure's min, median and max over the runs: the spread, not the best run. And the overheads of all
    runs pooled: one run's p50 rests on a few dozen tasks, and the same seed run twice moved it by 0.1 s."""
    spread = {}
    for name in SUMMARY_FIELDS:
        values = sorted(r[name] for r in reports if r.get(name) is not None)
        if values:
            spread[name] = {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}
    pooled = [x for r in reports for x in r.get("overheads_s", [])]
    return {
        "runs": len(reports),
        "seeds": [r["settings"]["seed"] for r in reports],
        "spread": spread,
        "pooled": {
            "overheads": len(pooled),
            "overhead_p50_s": percentile(pooled, 0.5),
            "overhead_p50_interval_s": quantile_interval(pooled, 0.5),
            "overhead_p95_s": percentile(pooled, 0.95),
            "overhead_p95_interval_s": quantile_interval(pooled, 0.95),
        },
    }


# -- the report's sections: each a function of the run's plain data --------------------------------------------


def call_figures(journal: list[dict], n: int) -> dict:
    """The API calls a run made (the mock's journal of /api/ requests), per image, and its 429s."""
    throttled = sum(1 for e in journal if e["status"] == 429)
    return {
        "api_calls_per_image": round(len(journal) / n, 3),
        "polls_per_image": round(sum(1 for e in journal if e["method"] == "GET") / n, 3),
        "http_429": throttled,
        "http_429_share": round(throttled / max(1, len(journal)), 4),
    }


def failure_figures(records: dict[str, dict]) -> dict:
    """How the failed uploads failed: reasons, and the eight commonest errors."""
    failed = [r for r in records.values() if r.get("outcome") == "failed"]
    errors = collections.Counter(f"{r.get('error')}: {str(r.get('message'))[:60]}" for r in failed)
    return {
        "failure_reasons": dict(collections.Counter(r.get("reason") for r in failed)),
        "failure_errors": dict(errors.most_common(8)),
    }


def overhead_figures(overheads: list[float], lags: list[float], after_lag: list[float], foreseen: list[float]) -> dict:
    """Overhead quantiles (with where the true ones lie, 90 %: null where one run cannot say), the sorted overheads
    for pooling runs (`summary`), and the split into detecting a task's end and what follows it."""
    return {
        "overhead_p50_s": percentile(overheads, 0.5),
        "overhead_p95_s": percentile(overheads, 0.95),
        "overhead_p50_interval_s": quantile_interval(overheads, 0.5),
        "overhead_p95_interval_s": quantile_interval(overheads, 0.95),
        "overheads_s": sorted(round(x, 3) for x in overheads),
        "overhead_split_s": {
            "detection_p50": percentile(lags, 0.5),
            "detection_p95": percentile(lags, 0.95),
            "after_detection_p50": percentile(after_lag, 0.5),
            "after_detection_p95": percentile(after_lag, 0.95),
            # The same, had every task's end been known (`foresight_lags`): what timing could gain.
            "detection_with_foresight_p50": percentile(foreseen, 0.5),
            "detection_with_foresight_p95": percentile(foreseen, 0.95),
        },
    }


def throughput_figures(n: int, qps: float, *, wall_s: float, written: list[float], bound_s: float | None) -> dict:
    """The run's pace against the ceiling (qps / 2 images a second): over the whole run, sustained between the
    10th and the 90th percent of records (`sustained_rate`), and what the ideal schedule of the same tasks gets."""
    ceiling = qps / 2
    rate = sustained_rate(written)
    return {
        "throughput_images_per_s": round(n / wall_s, 3),
        "ceiling_images_per_s": ceiling,
        "throughput_share_of_ceiling": round(n / wall_s / ceiling, 3),
        "sustained_share_of_ceiling": None if rate is None else round(rate / ceiling, 3),
        "bound_share_of_ceiling": round(n / bound_s / ceiling, 3) if bound_s else None,
    }


def workload_figures(processing_s: list[float], image_bytes: list[int]) -> dict:
    """What the run was given: the tasks' processing times and the images' sizes."""
    return {
        "processing_s_p50": percentile(processing_s, 0.5),
        "processing_s_p95": percentile(processing_s, 0.95),
        "processing_s_max": round(max(processing_s), 1),
        "over_60_s": sum(1 for p in processing_s if p > 60),
        "image_mb_p50": percentile([b / 1e6 for b in image_bytes], 0.5),
        "image_mb_max": round(max(image_bytes) / 1e6, 2),
    }


def calls_of(
    aws_calls: collections.Counter, service: str, operations: set[str] | None = None, exclude: set[str] | None = None
) -> int:
    """The AWS calls the functions made to one service ("<service>.<Operation>" counts), optionally only / except
    some operations."""
    total = 0
    for name, n in aws_calls.items():
        svc, op = name.split(".", 1)
        if svc == service and (operations is None or op in operations) and not (exclude and op in exclude):
            total += n
    return total


def aws_counts(
    *,
    transitions: int,
    invocation_seconds: list[tuple[str, float]],
    cold_starts: list[tuple[str, float]],
    memory_mb: dict[str, int],
    aws_calls: collections.Counter,
    egress_bytes: int,
    log_bytes: int,
) -> dict[str, float]:
    """What AWS bills a run for, keyed as PRICES: `invocation_seconds` are the invocations that ran (function,
    seconds; a throttled one never did), and Lambda bills the INIT of every cold start too."""
    gb_s = sum(s * memory_mb[fn] / 1024 for fn, s in invocation_seconds)
    gb_s += sum(ms / 1000 * memory_mb[fn] / 1024 for fn, ms in cold_starts)
    return {
        "state_transitions": transitions,
        "lambda_requests": len(invocation_seconds),
        "lambda_gb_s": gb_s,
        "dynamodb_write": calls_of(aws_calls, "dynamodb", DYNAMODB_WRITES),
        "dynamodb_read": calls_of(aws_calls, "dynamodb", exclude=DYNAMODB_WRITES),
        "s3_put": calls_of(aws_calls, "s3", S3_PUTS),
        "s3_get": calls_of(aws_calls, "s3", exclude=S3_PUTS),
        "egress_gb": egress_bytes / 1e9,
        "log_gb": log_bytes / 1e9,
        "xray_traces": len(invocation_seconds),  # active tracing: at most one trace per invocation
    }
