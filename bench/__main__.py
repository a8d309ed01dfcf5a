"""Throughput, latency and reliability benchmark of the whole pipeline on the local stack against the mock: N
uploads (a mix of the five operations, real images of realistic sizes) whose processing times, progress curves
and faults the pipeline is not told; prints one JSON object per run, and a summary of the runs.

    .venv/bin/python -m bench [--scenario burst|trickle] [--n 200] [--qps 2] [--time-scale 1] [--seed 1]
                              [--runs 1] [--faults] [--input-mode url|bytes] [--json-only] [--check]
                              [--progress power,stall,late,steps,noisy] [--workload CASSETTE_DIR]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import sys
import threading
import time
from pathlib import Path

import boto3

from bench import measure
from bench.faults import FAULT_PRESET, add_fault_arguments, configure_faults, replaced_bytes, reuploads
from bench.workload import PROGRESS_SHAPES, Upload, parse_mix, parse_shapes, plan, recorded_tasks
from mock_server.cassette import Cassette
from offline.harness import build
from offline.record_reader import read_records
from offline.sandboxes import resident_bytes
from offline.stopping import unwind_on_sigterm
from picwish_pipeline.uploads import parse_job_path

RENDER_MAX_SIDE = 512  # the mock renders results from inputs this size: its CPU is not what is measured


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenario", choices=("burst", "trickle"), default="burst")
    p.add_argument("--n", type=int, help="uploads (default: 200 for burst, 40 for trickle)")
    p.add_argument("--interval", type=float, default=4.0, help="trickle: mean seconds between uploads (Poisson)")
    p.add_argument("--qps", type=float, default=2.0)
    p.add_argument("--time-scale", type=float, default=1.0, help="the mock's processing-time scale")
    p.add_argument("--mix", default="idphoto=1,correction=1,inpaint=1,retouching-collection=1,clothing-segmentation=1")
    p.add_argument(
        "--progress",
        default=",".join(PROGRESS_SHAPES),
        help="progress shapes the API's tasks take, equally often (default: all; 'power' is the mock's own)",
    )
    p.add_argument(
        "--workload",
        metavar="DIR",
        type=Path,
        help="a cassette (picwish-mock --record DIR): each operation's tasks take a recorded task's time and curve",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=1, help="runs with seeds seed, seed+1, …, each on a new stack")
    p.add_argument("--input-mode", choices=("url", "bytes"), default="url")
    p.add_argument("--concurrency", type=int, default=4, help="Lambda sandboxes per function (local stack)")
    p.add_argument("--credit-price", type=float, default=0.05, help="USD per API credit (your plan's price)")
    p.add_argument("--small-images", action="store_true", help="tiny images (tests of the benchmark itself)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when an upload is lost or paid twice, or a crash window was never hit",
    )
    p.add_argument("--json-only", action="store_true", help="only the JSON on stdout")
    p.add_argument("--save-journal", metavar="PATH", help="write the mock's journal and task times here (JSON)")
    add_fault_arguments(p)
    args = p.parse_args(argv)
    if args.n is None:
        args.n = 200 if args.scenario == "burst" else 40
    if args.faults:
        for name, value in FAULT_PRESET.items():
            if not getattr(args, name):
                setattr(args, name, value)
    return args


class MemoryPeak:
    """The highest resident memory of the local stack while it runs: in all, and of each part (this process with
    moto and Step Functions, the Lambda sandboxes, the mock)."""

    def __init__(self, parts: dict) -> None:
        self.parts, self.peak = parts, 0
        self.part_peaks = dict.fromkeys(parts, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            sizes = {name: measure_bytes() for name, measure_bytes in self.parts.items()}
            self.peak = max(self.peak, sum(sizes.values()))
            self.part_peaks = {name: max(self.part_peaks[name], size) for name, size in sizes.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unwind_on_sigterm()
    console = sys.stdout
    sys.stdout = sys.stderr  # the functions' logs and metrics; the JSON alone goes to the console
    try:
        reports = []
        for run in range(args.runs):
            report = run_once(args, args.seed + run)
            reports.append(report)
            print(json.dumps(report, indent=2), file=console)
        if args.runs > 1:
            print(json.dumps(measure.summary(reports), indent=2), file=console)
    finally:
        sys.stdout = console
    problems = [f"seed {r['settings']['seed']}: {p}" for r in reports for p in measure.verdict(r)]
    for problem in problems:
        sys.stderr.write(f"check: {problem}\n")
    return 1 if args.check and problems else 0


def run_once(args: argparse.Namespace, seed: int) -> dict:
    rng = random.Random(seed)

    def progress(text: str) -> None:
        if not args.json_only:
            sys.stderr.write(f"\r\x1b[2K{text}" if sys.stderr.isatty() else f"{text}\n")
            sys.stderr.flush()

    progress(f"seed {seed}: making {args.n} images …")
    uploads = plan(
        args.n,
        parse_mix(args.mix),
        rng,
        scenario=args.scenario,
        interval_s=args.interval,
        small=args.small_images,
        shapes=parse_shapes(args.progress),
        recorded=recorded_tasks(Cassette.load(args.workload)) if args.workload else None,
    )
    progress(f"seed {seed}: starting the local stack (QPS {args.qps}, time scale {args.time_scale}) …")
    pipeline, stack = start_stack(args)
    with stack:
        runtime = pipeline.runtime
        mine = boto3.client("s3", endpoint_url=pipeline.endpoint_url, region_name=pipeline.stack.region)
        crashes = configure_faults(args, pipeline, uploads, seed)
        feed = Feed(mine, pipeline.stack.input_bucket, uploads, reuploads(args, uploads, seed))
        feed.upload_masks()
        # Nothing is warmed up or cleared: the cold starts and calls of the run are the run's.
        parts = {
            "stack": lambda: resident_bytes(),
            "sandboxes": lambda: runtime.memory_bytes() - resident_bytes(),
            "mock": lambda: resident_bytes(pipeline.mock.process.pid) if pipeline.mock.process else 0,
        }
        with MemoryPeak(parts) as memory:
            feed.start()
            records = wait_for_records(args, pipeline, mine, feed, progress)
            last = max((measure.written_at(r) for r in records.values()), default=time.time())
            runtime.wait_idle()
            wait_for_executions(pipeline)
            stale = stale_records(pipeline, mine, feed)
        started = feed.started
        report = report_of(args, seed, pipeline, uploads, records, started, last)
        report["reuploads"] = len(feed.again)
        report["stale_records"] = stale
        if args.save_journal:
            save_journal(Path(args.save_journal), pipeline, started, records)
        report["crashes_injected"] = dict(crashes)
        report.update(stack_figures(runtime, memory))
    progress("")
    return report


def start_stack(args: argparse.Namespace):
    """The local stack at the run's QPS and time scale, images to the API as `--input-mode` says."""
    parameters = {"ApiQps": str(args.qps), "WaitScale": str(args.time_scale), "InputMode": args.input_mode}
    if args.fault_slow:
        parameters["ApiReadTimeout"] = "2"
    mock_args = (
        "--qps",
        str(args.qps),
        "--time-scale",
        str(args.time_scale),
        "--render-max-side",
        str(RENDER_MAX_SIDE),
    )
    return build(mock_args, parameters, server=True, concurrency=args.concurrency)


def stack_figures(runtime, memory: MemoryPeak) -> dict:
    """The local stack's own cost of the run: its cold starts and its peak memory, in all and by part."""
    cold = [ms for _, ms in runtime.cold_starts]
    return {
        "cold_starts": {"count": len(cold), "p50_ms": measure.percentile(cold, 0.5), "max_ms": max(cold, default=0)},
        "peak_memory_mib": round(memory.peak / 2**20),
        "peak_memory_mib_by_part": {k: round(v / 2**20) for k, v in memory.part_peaks.items()},
    }


def save_journal(path: Path, pipeline, started: float, records: dict) -> None:
    """The mock's journal and task times, the QPS table and the records, for a replay of the run."""
    table = pipeline.stack.resources["RateLimitTable"]
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    saved = {
        "started": started,
        "journal": pipeline.mock.requests(),
        "tasks": pipeline.mock.task_times(),
        "slots": [item for page in pages for item in page["Items"]],
        "records": records,
    }
    path.write_text(json.dumps(saved))


class Feed:
    """The uploads at their times, and the keys uploaded again with new bytes (`again`: key → delay); `newest`
    holds each key's latest version as S3 answered it, the version its one record must describe."""

    def __init__(self, s3, bucket: str, uploads: list[Upload], again: dict[str, float]) -> None:
        self.s3, self.bucket, self.uploads, self.again = s3, bucket, uploads, again
        self.newest: dict[str, str | None] = {}
        self.started = 0.0
        self._threads: list[threading.Thread] = []

    def upload_masks(self) -> None:
        """The masks, before the clock starts (a user puts a mask before its image)."""
        for upload in self.uploads:
            for key, body in upload.masks.items():
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def start(self) -> None:
        self.started = time.time()
        feeder = threading.Thread(target=self._upload_all, daemon=True)
        self._threads.append(feeder)
        feeder.start()

    @property
    def done(self) -> bool:
        return not any(thread.is_alive() for thread in list(self._threads))

    def _put(self, key: str, body: bytes) -> None:
        answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.newest[key] = answer.get("VersionId")

    def _upload_all(self) -> None:
        for upload in self.uploads:
            delay = self.started + upload.at_s - time.time()
            if delay > 0:
                time.sleep(delay)
            self._put(upload.key, upload.body)
            if upload.key in self.again:
                later = threading.Timer(self.again[upload.key], self._put, (upload.key, replaced_bytes(upload.body)))
                self._threads.append(later)
                later.start()


def wait_for_records(args, pipeline, s3, feed: Feed, progress) -> dict[str, dict]:
    """Each key's record once it describes the key's newest version (and every upload, re-uploads too, is made)."""
    bucket = pipeline.stack.output_bucket
    keys = [u.key for u in feed.uploads]
    wanted = {}
    for key in keys:
        for _kind, record_key in parse_job_path(key).record_keys:
            wanted[record_key] = key
    records: dict[str, dict] = {}
    deadline = time.monotonic() + args.timeout
    while (len(records) < len(keys) or not feed.done) and time.monotonic() < deadline:
        for prefix in ("results/", "failed/"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = wanted.get(item["Key"])
                    if key and (key not in records or not _of_newest(records[key], feed)):
                        body = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                        if _of_newest(body, feed):
                            records[key] = {**body, "_seen": time.time()}
        journal = pipeline.mock.requests()
        calls = sum(1 for e in journal if e["path"].startswith("/api/"))
        throttled = sum(1 for e in journal if e["status"] == 429)
        progress(f"{len(records)}/{len(keys)} recorded · {calls} API calls · {throttled} × 429")
        time.sleep(2.0)  # listing costs the local stack's CPU; the end of the run comes from the records' own times
    return records


def _of_newest(record: dict, feed: Feed) -> bool:
    key = (record.get("source") or {}).get("key")
    return feed.newest.get(key) in (None, (record.get("source") or {}).get("version_id"))


def stale_records(pipeline, s3, feed: Feed) -> int:
    """Keys uploaded again whose record, once every job has ended, is not of their newest version (or missing)."""
    stale = 0
    for key in feed.again:
        found = read_records(s3, pipeline.stack.output_bucket, key)
        if len(found) != 1 or not _of_newest(found[0][1], feed):
            stale += 1
    return stale


def wait_for_executions(pipeline, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = pipeline.sfn.list_executions(stateMachineArn=pipeline.stack.state_machine_arn, statusFilter="RUNNING")
        if not running["executions"]:
            return
        time.sleep(0.5)


def state_transitions(pipeline) -> int:
    transitions = 0
    sfn = pipeline.sfn
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=pipeline.stack.state_machine_arn):
        for execution in page["executions"]:
            for history in sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"]):
                transitions += sum(1 for e in history["events"] if e["type"].endswith("StateEntered"))
    return transitions


def dead_letters(pipeline) -> int:
    """Events the dead-letter queue holds at the end of the run: each one an upload or an end nobody handled."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    queue = pipeline.stack.outputs["DeadLetterQueueUrl"]
    found = boto3.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(found.get(name, 0)) for name in names)


def report_of(args, seed: int, pipeline, uploads: list[Upload], records: dict, started: float, last: float) -> dict:
    """One run's report: its inputs gathered here, every figure computed in `measure`."""
    n = len(uploads)
    journal = [e for e in pipeline.mock.requests() if e["path"].startswith("/api/")]
    paid = paid_per_upload(uploads, journal)
    task_times = pipeline.mock.task_times()
    lags, after_lag = measure.overhead_split(records, task_times, journal)
    latencies = [measure.written_at(records[u.key]) - (started + u.at_s) for u in uploads if u.key in records]
    transitions = state_transitions(pipeline)
    counts = aws_counts(pipeline, uploads, paid, transitions)
    credits = sum(pipeline.mock.credits()["credits"].values())
    wall = max(last - started, 1e-9)
    return {
        "scenario": args.scenario,
        "images": n,
        **measure.outcomes([u.key for u in uploads], records),
        "duplicate_tasks": measure.duplicate_tasks(paid),
        "dead_letters": dead_letters(pipeline),
        **measure.failure_figures(records),
        **measure.call_figures(journal, n),
        "state_transitions_per_image": round(transitions / n, 2),
        "lambda_invocations_per_image": round(counts["lambda_requests"] / n, 2),
        **measure.overhead_figures(
            measure.overheads(records, task_times),
            lags,
            after_lag,
            measure.foresight_lags(journal, task_times, args.qps),
        ),
        "overhead_by_progress_shape": overhead_by_shape(uploads, records, task_times),
        "latency_p50_s": measure.percentile(latencies, 0.5),
        "latency_p95_s": measure.percentile(latencies, 0.95),
        **measure.throughput_figures(
            n,
            args.qps,
            wall_s=wall,
            written=[measure.written_at(r) for r in records.values()],
            bound_s=measure.bound_wall_s(journal, task_times, args.qps),
        ),
        "qps_utilization": round(len(journal) / (args.qps * wall), 3),
        "wall_s": round(wall, 1),
        "first_api_call_s": round(min((e["time"] for e in journal), default=started) - started, 1),
        "workload": measure.workload_figures(
            [u.processing_s * args.time_scale for u in uploads], [len(u.body) for u in uploads]
        ),
        "api_credits": credits,
        "cost_per_1000_images_usd": measure.cost_per_1000(counts, n, credits=credits, credit_price=args.credit_price),
        "settings": settings_of(args, seed),
    }


def paid_per_upload(uploads: list[Upload], journal: list[dict]) -> collections.Counter:
    """Tasks paid per upload; bytes uploaded again are another upload, and each version may be paid once."""
    by_digest = {u.sha256: u.key for u in uploads}
    by_digest.update({hashlib.sha256(replaced_bytes(u.body)).hexdigest(): f"{u.key}@again" for u in uploads})
    return measure.paid_per_upload(journal, lambda e: measure.upload_key_of(e, by_digest))


def aws_counts(pipeline, uploads: list[Upload], paid: collections.Counter, transitions: int) -> dict[str, float]:
    """What AWS bills the run for, from the local Lambda service's records and the API's reads of the inputs."""
    runtime = pipeline.runtime
    ran = [(i.function_name, i.seconds) for i in runtime.invocations if i.error != "Lambda.TooManyRequestsException"]
    names = {fn for fn, _ in ran} | {fn for fn, _ in runtime.cold_starts}
    size_of = {u.key: len(u.body) for u in uploads}
    # The API reads each paid upload once (masks aside); a version's key is its upload's, `@` and the version after.
    fetched = sum(size_of.get(k, size_of.get(k.rsplit("@", 1)[0], 0)) for k in paid if k)
    return measure.aws_counts(
        transitions=transitions,
        invocation_seconds=ran,
        cold_starts=list(runtime.cold_starts),
        memory_mb={fn: pipeline.runtime_memory(fn) for fn in names},
        aws_calls=runtime.aws_calls,
        egress_bytes=fetched,
        log_bytes=sum(runtime.log_bytes.values()),
    )


def settings_of(args, seed: int) -> dict:
    return {
        "seed": seed,
        "qps": args.qps,
        "time_scale": args.time_scale,
        "input_mode": args.input_mode,
        "concurrency": args.concurrency,
        "interval_s": args.interval if args.scenario == "trickle" else None,
        "mix": args.mix,
        "progress_shapes": args.progress,
        "workload": str(args.workload) if args.workload else None,
        "credit_price": args.credit_price,
        "faults": {k: getattr(args, k) for k in FAULT_PRESET if getattr(args, k)},
    }


def overhead_by_shape(uploads: list[Upload], records: dict, task_times: dict) -> dict[str, dict]:
    """Overhead p50 / p95 for each progress shape: where the poll timing's guesses go wrong."""
    figures = {}
    for shape in sorted({u.progress_shape for u in uploads}):
        mine = {u.key: records[u.key] for u in uploads if u.progress_shape == shape and u.key in records}
        overheads = measure.overheads(mine, task_times)
        figures[shape] = {
            "n": len(overheads),
            "p50_s": measure.percentile(overheads, 0.5),
            "p95_s": measure.percentile(overheads, 0.95),
        }
    return figures


if __name__ == "__main__":
    sys.exit(main())
