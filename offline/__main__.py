"""The offline pipeline's command line.

python -m offline stack                 # the local stack in the foreground; writes .local/stack.json
python -m offline demo                  # the main job: sample set in, results and out/report.html out
python -m offline run photos/ --operation idphoto --option size=295x413 --option format=jpg
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from .harness import Pipeline, build
from .jobs import Job, Tracker
from .report import summary_table, write_html
from .samples import demo_set
from .stopping import unwind_on_sigterm

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = sys.stdout  # what the user sees; the functions' own logs go to .local/lambda.log, as to CloudWatch


def say(*parts: object) -> None:
    print(*parts, file=CONSOLE, flush=True)


def route_function_logs() -> Path:
    log_path = ROOT / ".local" / "lambda.log"
    log_path.parent.mkdir(exist_ok=True)
    sys.stdout = log_path.open("w", encoding="utf-8")  # Powertools logs and EMF metrics write to stdout
    # Library warnings and log records (moto logs an ERROR for every execution that ends in a Fail state, as a
    # failed job's does) belong in the log too, not on the user's screen.
    logging.captureWarnings(True)
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    return log_path


def start(args: argparse.Namespace) -> tuple[Pipeline, object]:
    log_path = route_function_logs()
    say(f"Starting the local stack (moto server, template.yaml, mock API at QPS {args.qps}) …")
    say(f"Function logs: {log_path.relative_to(ROOT)}")
    started = time.monotonic()
    pipeline, stack = build(
        ("--qps", str(args.qps), "--time-scale", str(args.time_scale)),
        {"ApiQps": str(args.qps), "WaitScale": str(args.time_scale)},
        server=True,
    )
    pipeline.runtime.s3_delivery_copies = getattr(args, "s3_delivery_copies", 1)
    pipeline.runtime.one_log_stream = True  # the functions' stderr to .local/lambda.log too
    say(f"Ready in {time.monotonic() - started:.1f} s.")
    return pipeline, stack


def stack_info(pipeline: Pipeline) -> dict:
    return {
        "endpoint_url": pipeline.endpoint_url,
        "region": pipeline.stack.region,
        "input_bucket": pipeline.stack.input_bucket,
        "output_bucket": pipeline.stack.output_bucket,
        "state_machine_arn": pipeline.stack.state_machine_arn,
        "dead_letter_queue_url": pipeline.stack.outputs["DeadLetterQueueUrl"],
        "tasks_table": pipeline.stack.outputs["TasksTableName"],
        "rate_table": pipeline.stack.outputs["RateLimitTableName"],
        "submit_function": pipeline.stack.outputs["SubmitFunctionName"],
        "backstop_function": pipeline.stack.outputs["BackstopFunctionName"],
        "backfill_machine_arn": pipeline.stack.outputs["BackfillStateMachineArn"],
        "qps": float(pipeline.stack.outputs["ApiQps"]),
        "credit_budget": int(pipeline.stack.outputs["CreditBudget"]),
        "live_share": float(pipeline.stack.outputs["LiveUploadShare"]),
        "lambda_concurrency": pipeline.runtime.default_concurrency,  # sandboxes a function runs at once
        "mock_url": pipeline.mock.url,
        "api_key": pipeline.mock.api_key,  # the mock's key: worthless outside this machine
        # An operator's key (every permission): the stack enforces IAM, so "testing" is refused once it is up.
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


def cmd_stack(args: argparse.Namespace) -> int:
    pipeline, stack = start(args)
    with stack:
        info = stack_info(pipeline)
        target = Path(args.info_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(info, indent=2) + "\n")
        endpoint = info["endpoint_url"]
        say(
            f"\nLocal stack up. Details in {target}\n"
            f"  AWS endpoint  {endpoint}  (region {info['region']}; IAM enforced: use the operator key below)\n"
            f"  operator key  {info['aws_access_key_id']} / {info['aws_secret_access_key']}\n"
            f"  input bucket  {info['input_bucket']}\n  output bucket {info['output_bucket']}\n"
            f"  mock API      {info['mock_url']}  key {info['api_key']}\n\n"
            f"Try:\n  AWS_ACCESS_KEY_ID={info['aws_access_key_id']} \\\n"
            f"  AWS_SECRET_ACCESS_KEY={info['aws_secret_access_key']} \\\n"
            f"    aws --endpoint-url {endpoint} \\\n"
            f"    s3 cp photo.jpg s3://{info['input_bucket']}/incoming/idphoto/\n"
            f"  … then results/idphoto/photo/ appears in s3://{info['output_bucket']}/\n\nCtrl-C stops it."
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        target.unlink(missing_ok=True)
    return 0


def follow(pipeline: Pipeline, jobs: list[Job], out: Path, title: str, timeout_s: float) -> int:
    tracker = Tracker(pipeline, jobs)
    tracker.wait(timeout_s, stream=CONSOLE)
    pipeline.runtime.wait_idle()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tracker.download(out)
    report = write_html(jobs, out, title)
    say()
    say(summary_table(jobs))
    say(f"\nResults in {out}/, report: {report}")
    return 0 if all(job.as_expected for job in jobs) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    pipeline, stack = start(args)
    with stack:
        samples = demo_set()
        jobs = []
        for sample in samples:
            if sample.rule:
                pipeline.mock.add_rule(filename=sample.key.rsplit("/", 1)[1], **sample.rule)
            for key, body in sample.extra.items():
                pipeline.upload(key, body)
        say(f"Uploading {len(samples)} files to s3://{pipeline.stack.input_bucket}/incoming/ …\n")
        for sample in samples:
            pipeline.upload(sample.key, sample.body, sample.metadata)
            jobs.append(Job(sample.key, sample.title, sample.expect, list(sample.extra)))
        return follow(pipeline, jobs, Path(args.out), "PicWish pipeline — offline demo", args.timeout)


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option {pair!r}: expected NAME=VALUE")
        options[name.strip()] = value
    return options


def cmd_run(args: argparse.Namespace) -> int:
    files = []
    for given in args.paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"{given}: no such file or folder")
    if not files:
        raise SystemExit("no files to process")
    options = _options(args.option)
    pipeline, stack = start(args)
    with stack:
        jobs = []
        mask = Path(args.mask).read_bytes() if args.mask else None
        for path in files:
            key = f"incoming/{args.operation}/{path.name}"
            extra = []
            if mask is not None:
                mask_key = f"masks/{args.operation}/{path.stem}.png"
                pipeline.upload(mask_key, mask)
                extra.append(mask_key)
            pipeline.upload(key, path.read_bytes(), options)
            jobs.append(Job(key, path.name, None, extra))
        return follow(pipeline, jobs, Path(args.out), f"PicWish pipeline — {args.operation}", args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("stack", "run the local stack"), ("demo", "the main job"), ("run", "your own images")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--qps", type=float, default=2.0, help="the mock's (and the pipeline's) QPS limit")
        p.add_argument("--time-scale", type=float, default=0.05, help="the mock's processing-time scale")
        if name == "stack":
            p.add_argument("--info-file", default=str(ROOT / ".local" / "stack.json"), help="where to write stack.json")
            p.add_argument("--s3-delivery-copies", type=int, default=1, help="2 delivers every S3 event twice")
        else:
            p.add_argument("--out", default="out", help="where results and report.html go")
            p.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for every record")
    run = sub.choices["run"]
    run.add_argument("paths", nargs="+", help="image files or folders")
    run.add_argument("--operation", required=True, help="retouching-collection, correction, inpaint, …")
    run.add_argument("--option", action="append", default=[], help="NAME=VALUE, repeatable (the API's parameters)")
    run.add_argument("--mask", help="a mask image applied to every file (inpaint, retouching-collection)")
    args = parser.parse_args(argv)
    unwind_on_sigterm()  # `stack` waits for SIGTERM itself, and stops as it does on Ctrl-C
    return {"stack": cmd_stack, "demo": cmd_demo, "run": cmd_run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
