"""Throughput and reliability benchmark: N uploads (a mix of the five operations) through the local stack against
the mock at a given QPS, with optional faults; prints one JSON object at the end.

    .venv/bin/python -m bench [--n 200] [--qps 2] [--time-scale 0.1] [--faults] [--json-only]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import boto3

from offline.harness import build
from offline.lambdas import LambdaCrash, LambdaThrottled
from offline.samples import encode, mask, portrait, product
from picwish.catalog import OPERATIONS
from picwish.uploads import parse_job_path

# Published us-east-1 prices (USD): Step Functions Standard per state transition, Lambda per request and per
# GB-second on arm64, DynamoDB on-demand per write / read request unit, S3 per PUT-class / GET-class request.
PRICES = {  # keyed as the counts they price
    "state_transitions": 0.025 / 1000,
    "lambda_requests": 0.20 / 1_000_000,
    "lambda_gb_s": 0.0000133334,
    "dynamodb_write": 0.625 / 1_000_000,
    "dynamodb_read": 0.125 / 1_000_000,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
}
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
S3_PUTS = {"PutObject", "CopyObject", "ListObjectsV2", "DeleteObject"}
FAULT_PRESET = {
    "fault_500": 0.02,
    "fault_429": 0.02,
    "fault_429_body": 0.01,
    "fault_truncate": 0.01,
    "fault_slow": 0.005,
    "fault_expire": 0.02,
    "crash_before_post": 0.01,
    "crash_before_record": 0.01,
    "crash_after_create": 0.02,
    "lambda_throttle": 0.02,
    "duplicate_deliveries": True,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=200, help="uploads")
    p.add_argument("--qps", type=float, default=2.0)
    p.add_argument("--time-scale", type=float, default=0.1, help="the mock's processing-time scale")
    p.add_argument("--mix", default="idphoto=1,correction=1,inpaint=1,retouching-collection=1,clothing-segmentation=1")
    p.add_argument("--spread", type=float, default=0.3, help="sigma of the log-normal processing-time factor")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=4, help="Lambda sandboxes per function (local stack)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--faults", action="store_true", help="turn on every fault below at its preset rate")
    p.add_argument("--fault-500", type=float, default=0.0, help="rate of API calls answered 500")
    p.add_argument("--fault-429", type=float, default=0.0, help="rate of API calls answered 429")
    p.add_argument("--fault-429-body", type=float, default=0.0, help="rate answered 429 inside an HTTP 200")
    p.add_argument("--fault-truncate", type=float, default=0.0, help="rate of answers cut off (dropped connection)")
    p.add_argument("--fault-slow", type=float, default=0.0, help="rate of answers slower than the read timeout")
    p.add_argument("--fault-expire", type=float, default=0.0, help="rate of uploads whose result link is expired")
    p.add_argument(
        "--crash-before-post",
        type=float,
        default=0.0,
        help="rate of creates dying after the claim, before the POST",
    )
    p.add_argument(
        "--crash-before-record",
        type=float,
        default=0.0,
        help="rate of creates that die after the API answered, before the task id is recorded",
    )
    p.add_argument("--crash-after-create", type=float, default=0.0, help="rate of creates that die after the record")
    p.add_argument(
        "--check", action="store_true", help="exit 1 when an upload is lost or paid twice, or a crash window was missed"
    )
    p.add_argument("--lambda-throttle", type=float, default=0.0, help="rate of throttled Lambda invocations")
    p.add_argument("--duplicate-deliveries", action="store_true", help="deliver every S3 event twice")
    p.add_argument("--json-only", action="store_true", help="only the JSON on stdout")
    args = p.parse_args(argv)
    if args.faults:
        for name, value in FAULT_PRESET.items():
            if not getattr(args, name):
                setattr(args, name, value)
    return args


class AwsCallCounter:
    """The AWS calls the functions made, as their sandboxes counted them ("<service>.<Operation>" → n)."""

    def __init__(self, calls: collections.Counter[str]) -> None:
        self.calls = calls

    def count(self, service: str, operations: set[str] | None = None, exclude: set[str] | None = None) -> int:
        total = 0
        for name, n in self.calls.items():
            svc, op = name.split(".", 1)
            if svc == service and (operations is None or op in operations) and not (exclude and op in exclude):
                total += n
        return total


class MemoryPeak:
    """The highest resident memory of the local stack (this process, every sandbox, the mock) while it runs."""

    def __init__(self, measure) -> None:
        self.measure, self.peak = measure, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.measure())


def _rss(process) -> int:
    try:
        return int(Path(f"/proc/{process.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError, IndexError):
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = sys.stdout
    sys.stdout = sys.stderr  # the functions' logs and metrics; the JSON alone goes to the console
    rng = random.Random(args.seed)

    def progress(text: str) -> None:
        if not args.json_only:
            sys.stderr.write(f"\r\x1b[2K{text}" if sys.stderr.isatty() else f"{text}\n")
            sys.stderr.flush()

    progress(f"starting the local stack (QPS {args.qps}, time scale {args.time_scale}) …")
    parameters = {"ApiQps": str(args.qps), "WaitScale": str(args.time_scale)}
    if args.fault_slow:
        parameters["ApiReadTimeout"] = "2"
    pipeline, stack = build(
        ("--qps", str(args.qps), "--time-scale", str(args.time_scale)),
        parameters,
        server=True,
        concurrency=args.concurrency,
    )
    with stack:
        runtime = pipeline.runtime
        counter = AwsCallCounter(runtime.aws_calls)
        memory = MemoryPeak(lambda: runtime.memory_bytes() + _rss(pipeline.mock.process))
        mine = boto3.Session().client("s3", endpoint_url=pipeline.endpoint_url, region_name=pipeline.stack.region)
        uploads = plan(args, rng)
        crashes = configure_faults(args, pipeline, uploads, rng)
        for key, body, _ in uploads:
            if key.startswith("masks/"):
                mine.put_object(Bucket=pipeline.stack.input_bucket, Key=key, Body=body)
        jobs = [(key, body, meta) for key, body, meta in uploads if key.startswith("incoming/")]
        counter.calls.clear()
        runtime.invocations.clear()
        runtime.cold_starts.clear()
        memory.start()
        started = time.time()
        for key, body, meta in jobs:
            mine.put_object(Bucket=pipeline.stack.input_bucket, Key=key, Body=body, Metadata=meta)
        records = wait_for_records(args, pipeline, mine, [k for k, _, _ in jobs], progress)
        last_record = max((_written_at(r) for r in records.values()), default=time.time())
        runtime.wait_idle()
        wait_for_executions(pipeline)
        memory.stop()
        report = measure(args, pipeline, counter, records, [k for k, _, _ in jobs], started, last_record)
        report["crashes_injected"] = dict(crashes)
        cold = [ms for _, ms in runtime.cold_starts]
        report["cold_starts"] = {"count": len(cold), "p50_ms": _percentile(cold, 0.5), "max_ms": max(cold, default=0)}
        report["peak_memory_mib"] = round(memory.peak / 2**20)
    progress("")
    print(json.dumps(report, indent=2), file=console)
    missed = [name for name, count in report["crashes_injected"].items() if count == 0]
    return 1 if args.check and (report["lost"] or report["duplicate_tasks"] or missed) else 0


def plan(args: argparse.Namespace, rng: random.Random) -> list[tuple[str, bytes, dict]]:
    """N uploads in the given mix (masks first), small real images, each with its own processing time."""
    weights = {}
    for part in args.mix.split(","):
        name, _, weight = part.partition("=")
        if name not in OPERATIONS:
            raise SystemExit(f"--mix: unknown operation {name!r}")
        weights[name] = float(weight or 1)
    person, bag = encode(portrait(96, 120), "JPEG"), encode(product(120, 90), "PNG")
    bag_mask = encode(mask((120, 90), (40, 30, 80, 60)), "PNG")
    names = list(weights)
    uploads = []
    for i in range(args.n):
        op = rng.choices(names, [weights[n] for n in names])[0]
        stem = f"b{i:04d}"
        if any(slot.name == "mask" for slot in OPERATIONS[op].slots):
            uploads.append((f"masks/{op}/bench/{stem}.png", bag_mask, {}))
            uploads.append((f"incoming/{op}/bench/{stem}.png", bag, {}))
        else:
            uploads.append((f"incoming/{op}/bench/{stem}.jpg", person, {}))
    return uploads


def configure_faults(args, pipeline, uploads, rng: random.Random) -> collections.Counter:
    """Mock rules and chaos, and the Lambda faults; returns the crashes injected so far, by window (live)."""
    rules = []
    for key, _, _ in uploads:
        if not key.startswith("incoming/"):
            continue
        op = parse_job_path(key).operation
        factor = math.exp(rng.gauss(0, args.spread)) if args.spread else 1.0
        rule = {"filename": key.rsplit("/", 1)[1], "processing": round(OPERATIONS[op].typical_processing_s * factor, 3)}
        if args.fault_expire and rng.random() < args.fault_expire:
            rule["result_ttl"] = 0
        rules.append(rule)
    pipeline.mock.add_rules(rules)
    chaos = {
        k: v
        for k, v in {
            "500": args.fault_500,
            "429": args.fault_429,
            "429-body": args.fault_429_body,
            "truncate": args.fault_truncate,
            "slow": args.fault_slow,
        }.items()
        if v
    }
    pipeline.mock.set_chaos(**chaos, seed=args.seed)
    runtime = pipeline.runtime
    runtime.s3_delivery_copies = 2 if args.duplicate_deliveries else 1
    fault_rng = random.Random(args.seed + 1)
    create_fn = pipeline.stack.resources["CreateFunction"]
    tasks = pipeline.stack.resources["TasksTable"]
    # The three windows of a create: its claim written but nothing sent; the API's answer in hand but not
    # recorded; everything recorded but the step's output lost. Point in the runtime → (name, rate).
    crash_points = {
        f"after DynamoDB.PutItem {tasks}": ("before_post", args.crash_before_post),
        f"before DynamoDB.UpdateItem {tasks}": ("before_record", args.crash_before_record),
        "after": ("after_create", args.crash_after_create),
    }
    crashes = collections.Counter({name: 0 for name, rate in crash_points.values() if rate})
    for logical_id, function in pipeline.stack.functions().items():

        def hook(phase, event, params=None, _fn=function):
            if phase == "before" and args.lambda_throttle and fault_rng.random() < args.lambda_throttle:
                raise LambdaThrottled("Rate exceeded")
            if _fn != create_fn:
                return
            point = phase if phase == "after" else f"{phase} {(params or {}).get('TableName')}"
            name, rate = crash_points.get(point, (None, 0.0))
            # The first create to reach a window always dies there: a run never passes by missing one.
            if rate and (crashes[name] == 0 or fault_rng.random() < rate):
                crashes[name] += 1
                raise LambdaCrash(f"the create function died ({phase})")

        if logical_id != "SubmitFunction" and (args.lambda_throttle or crashes):
            runtime.faults[function] = hook
    return crashes


def wait_for_records(args, pipeline, s3, keys: list[str], progress) -> dict[str, dict]:
    bucket = pipeline.stack.output_bucket
    wanted = {}
    for key in keys:
        for _kind, record_key in parse_job_path(key).record_keys:
            wanted[record_key] = key
    records: dict[str, dict] = {}
    deadline = time.monotonic() + args.timeout
    while len(records) < len(keys) and time.monotonic() < deadline:
        for prefix in ("results/", "failed/"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = wanted.get(item["Key"])
                    if key and key not in records:
                        body = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                        records[key] = {**body, "_seen": time.time()}
        journal = pipeline.mock.requests()
        calls = sum(1 for e in journal if e["path"].startswith("/api/"))
        throttled = sum(1 for e in journal if e["status"] == 429)
        progress(f"{len(records)}/{len(keys)} recorded · {calls} API calls · {throttled} × 429")
        time.sleep(2.0)  # listing costs the local stack's CPU; the end of the run comes from the records' own times
    return records


def _written_at(record: dict) -> float:
    """When the record was written, by the pipeline's clock (not when this loop happened to see it)."""
    stamp = (record.get("timestamps") or {}).get("result_written") or record.get("recorded_at")
    return datetime.fromisoformat(stamp).timestamp() if stamp else record["_seen"]


def wait_for_executions(pipeline, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = pipeline.sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn, statusFilter="RUNNING")
        if not running["executions"]:
            return
        time.sleep(0.5)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _upload_key(entry: dict) -> str | None:
    url = (entry.get("fields") or {}).get("image_url")
    if not url:
        return None
    path = unquote(urlsplit(url).path)
    return path.split("/", 2)[2] if path.count("/") >= 2 else None


def measure(
    args, pipeline, counter: AwsCallCounter, records: dict, keys: list[str], started: float, last: float
) -> dict:
    n = len(keys)
    journal = [e for e in pipeline.mock.requests() if e["path"].startswith("/api/")]
    creates = [e for e in journal if e["method"] == "POST"]
    polls = [e for e in journal if e["method"] == "GET"]
    paid = collections.Counter(_upload_key(e) for e in creates if e["status"] == 200 and e.get("task_id"))
    duplicate_tasks = sum(c - 1 for k, c in paid.items() if k is not None and c > 1)
    times = pipeline.mock.task_times()
    overheads = []
    for record in records.values():
        task = times.get(record.get("task_id") or "")
        written = (record.get("timestamps") or {}).get("result_written")
        if record.get("outcome") == "succeeded" and task and task.get("completed") and written:
            overheads.append(datetime.fromisoformat(written).timestamp() - task["completed"])
    transitions = 0
    for page in pipeline.sfn.get_paginator("list_executions").paginate(
        stateMachineArn=pipeline.stack.state_machine_arn
    ):
        for execution in page["executions"]:
            for history in pipeline.sfn.get_paginator("get_execution_history").paginate(
                executionArn=execution["executionArn"]
            ):
                transitions += sum(1 for e in history["events"] if e["type"].endswith("StateEntered"))
    # Lambda bills what ran: a throttled invocation never did.
    invocations = [i for i in pipeline.runtime.invocations if i.error != "Lambda.TooManyRequestsException"]
    memory = {fn: pipeline.runtime_memory(fn) for fn in {i.function_name for i in invocations}}
    gb_s = sum(i.seconds * memory[i.function_name] / 1024 for i in invocations)
    wall = max(last - started, 1e-9)
    counts = {
        "state_transitions": transitions,
        "lambda_requests": len(invocations),
        "lambda_gb_s": gb_s,
        "dynamodb_write": counter.count("dynamodb", DYNAMODB_WRITES),
        "dynamodb_read": counter.count("dynamodb", exclude=DYNAMODB_WRITES),
        "s3_put": counter.count("s3", S3_PUTS),
        "s3_get": counter.count("s3", exclude=S3_PUTS),
    }
    cost = {k: round(counts[k] * PRICES[k] / n * 1000, 5) for k in counts}
    succeeded = sum(1 for k in keys if records.get(k, {}).get("outcome") == "succeeded")
    failed = sum(1 for k in keys if records.get(k, {}).get("outcome") == "failed")
    reasons = collections.Counter(r.get("reason") for r in records.values() if r.get("outcome") == "failed")
    errors = collections.Counter(
        f"{r.get('error')}: {str(r.get('message'))[:60]}" for r in records.values() if r.get("outcome") == "failed"
    )
    return {
        "images": n,
        "succeeded": succeeded,
        "failed": failed,
        "lost": n - succeeded - failed,
        "duplicate_tasks": duplicate_tasks,
        "failure_reasons": dict(reasons),
        "failure_errors": dict(errors.most_common(8)),
        "api_calls_per_image": round(len(journal) / n, 3),
        "polls_per_image": round(len(polls) / n, 3),
        "http_429": sum(1 for e in journal if e["status"] == 429),
        "http_429_share": round(sum(1 for e in journal if e["status"] == 429) / max(1, len(journal)), 4),
        "state_transitions_per_image": round(transitions / n, 2),
        "lambda_invocations_per_image": round(len(invocations) / n, 2),
        "latency_overhead_s": {"p50": _percentile(overheads, 0.5), "p95": _percentile(overheads, 0.95)},
        "throughput_images_per_s": round(n / wall, 3),
        "ceiling_images_per_s": args.qps / 2,
        "qps_utilization": round(len(journal) / (args.qps * wall), 3),
        "wall_s": round(wall, 1),
        "first_api_call_s": round(min((e["time"] for e in journal), default=started) - started, 1),
        "cost_per_1000_images_usd": {**cost, "total": round(sum(cost.values()), 4)},
        "settings": {
            "qps": args.qps,
            "time_scale": args.time_scale,
            "concurrency": args.concurrency,
            "mix": args.mix,
            "spread": args.spread,
            "faults": {k: getattr(args, k) for k in FAULT_PRESET if getattr(args, k)},
        },
    }


if __name__ == "__main__":
    sys.exit(main())
