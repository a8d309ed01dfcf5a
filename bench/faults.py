"""The faults a benchmark run injects: the API's (500s, 429s, cut-off answers, slow answers, expired links) by
the mock's chaos, the functions' (crashes in every window where a record could be lost or a task paid twice,
throttles, StartExecution's quota) by the local stack, and the users' (keys uploaded again while their job
runs). Returns, live, how many crashes hit each window."""

from __future__ import annotations

import argparse
import collections
import random

from offline.lambdas import LambdaCrash, LambdaThrottled
from offline.moto_throttles import limit_start_executions

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
    "crash_after_poll": 0.01,
    "crash_mid_finalize": 0.02,
    "crash_after_submit": 0.02,
    "lambda_throttle": 0.02,
    "duplicate_deliveries": True,
    "reupload_rate": 0.05,
    "start_quota": 2.0,
}
CRASH_HELP = {
    "crash_before_post": "creates that die after the claim, before the POST",
    "crash_before_record": "creates that die after the API answered, before the task id is recorded",
    "crash_after_create": "creates that die after the record (the step's output is lost)",
    "crash_after_poll": "polls that die after their GET (the answer is lost)",
    "crash_mid_finalize": "finalizes that die after writing an output, before result.json",
    "crash_after_submit": "submits that die after starting the execution (S3's event is retried)",
}


def add_fault_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--faults", action="store_true", help="turn on every fault below at its preset rate")
    p.add_argument("--fault-500", type=float, default=0.0, help="rate of API calls answered 500")
    p.add_argument("--fault-429", type=float, default=0.0, help="rate of API calls answered 429")
    p.add_argument("--fault-429-body", type=float, default=0.0, help="rate answered 429 inside an HTTP 200")
    p.add_argument("--fault-truncate", type=float, default=0.0, help="rate of answers cut off (dropped connection)")
    p.add_argument("--fault-slow", type=float, default=0.0, help="rate of answers slower than the read timeout")
    p.add_argument("--fault-expire", type=float, default=0.0, help="rate of uploads whose result link is expired")
    for name, text in CRASH_HELP.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0, help=f"rate of {text}")
    p.add_argument("--lambda-throttle", type=float, default=0.0, help="rate of throttled Lambda invocations")
    p.add_argument("--duplicate-deliveries", action="store_true", help="deliver every S3 event twice")
    p.add_argument(
        "--start-quota",
        type=float,
        default=0.0,
        help="StartExecution admitted at this many a second after a burst of two (Step Functions' quota, scaled "
        "down); past it the start is throttled",
    )
    p.add_argument(
        "--reupload-rate",
        type=float,
        default=0.0,
        help="share of keys uploaded again with new bytes while their job runs (a record not of the newest "
        "version fails --check)",
    )


def configure_faults(args: argparse.Namespace, pipeline, uploads, seed: int) -> collections.Counter:
    """The mock's rules and chaos and the local Lambda service's fault hooks for a run; the crashes they cause are
    counted in the counter returned (each window named there is hit at least once)."""
    rng = random.Random(seed + 1)
    _mock_faults(args, pipeline.mock, uploads, rng, seed)
    runtime = pipeline.runtime
    runtime.s3_delivery_copies = 2 if args.duplicate_deliveries else 1
    resources = pipeline.stack.resources
    tasks, output = resources["TasksTable"], pipeline.stack.output_bucket
    # (function, point in the runtime, what the point's parameters must match) → the window's name
    windows = {
        ("CreateFunction", "after DynamoDB.PutItem", tasks): "crash_before_post",
        ("CreateFunction", "before DynamoDB.UpdateItem", tasks): "crash_before_record",
        ("CreateFunction", "after", None): "crash_after_create",
        ("PollFunction", "after", None): "crash_after_poll",
        ("FinalizeFunction", "after S3.PutObject", output): "crash_mid_finalize",
        ("SubmitFunction", "after", None): "crash_after_submit",
    }
    crashes = collections.Counter({name: 0 for name in windows.values() if getattr(args, name)})
    if args.start_quota:  # a start refused by the quota is a window too: a run that never met it says so
        crashes["start_throttled"] = 0
        limit_start_executions(2, args.start_quota, lambda: crashes.update(["start_throttled"]))
    functions = pipeline.stack.functions()
    for logical_id, function in functions.items():
        mine = {(point, target): name for (fn, point, target), name in windows.items() if fn == logical_id}

        def hook(phase, event, params=None, _mine=mine, _fn=logical_id):
            if phase == "before" and args.lambda_throttle and rng.random() < args.lambda_throttle:
                raise LambdaThrottled("Rate exceeded")
            params = params or {}
            target = params.get("TableName") or params.get("Bucket")
            name = _mine.get((phase, target)) or _mine.get((phase, None))
            if name == "crash_mid_finalize" and str(params.get("Key", "")).endswith("result.json"):
                return  # the record itself is the commit: a crash after it is "after", not "mid"
            rate = getattr(args, name, 0.0) if name else 0.0
            # The first to reach a window always dies there: a run never passes by missing one.
            if rate and (crashes[name] == 0 or rng.random() < rate):
                crashes[name] += 1
                raise LambdaCrash(f"{_fn} died ({phase})")

        if args.lambda_throttle or any(name in crashes for name in mine.values()):
            runtime.faults[function] = hook
    return crashes


def _mock_faults(args: argparse.Namespace, mock, uploads, rng: random.Random, seed: int) -> None:
    """Each upload's processing time and progress curve (and an expired result link, sometimes); the chaos rates."""
    rules = []
    for upload in uploads:
        rule = {
            "filename": upload.key.rsplit("/", 1)[1],
            "processing": upload.processing_s,
            "progress_curve": upload.progress_curve,
        }
        if upload.progress_points is not None:
            rule["progress_points"] = [list(point) for point in upload.progress_points]
        if args.fault_expire and rng.random() < args.fault_expire:
            rule["result_ttl"] = 0
        rules.append(rule)
    mock.add_rules(rules)
    chaos = {
        "500": args.fault_500,
        "429": args.fault_429,
        "429-body": args.fault_429_body,
        "truncate": args.fault_truncate,
        "slow": args.fault_slow,
    }
    mock.set_chaos(**{k: v for k, v in chaos.items() if v}, seed=seed)


def reuploads(args: argparse.Namespace, uploads, seed: int) -> dict[str, float]:
    """Key → seconds after its first upload when it is uploaded again with new bytes: anywhere from its create's
    wait to its task's end, so some are replaced before their create and some after it."""
    rng = random.Random(seed + 2)
    chosen = {}
    for upload in uploads:
        if args.reupload_rate and rng.random() < args.reupload_rate:
            chosen[upload.key] = rng.uniform(0.2, 2 * upload.processing_s * args.time_scale + 5)
    return chosen


def replaced_bytes(body: bytes) -> bytes:
    """Other bytes of the same picture: decoders stop at the image's end marker and ignore what follows."""
    return body + b"\0reuploaded"
