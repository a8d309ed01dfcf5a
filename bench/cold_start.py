"""Each function's cold start on this machine: the INIT Lambda bills and a first request waits for — importing the
handler module (and whatever it builds at import) in a fresh interpreter, as a new sandbox does, from the
function's own code folder and the layer's packages. The median of several fresh processes per function; the
target is 250 ms each. `with_first_use_ms` adds what the function builds on its first invocation instead (its
AWS clients, Pillow for submit): the INIT figure alone would flatter the lazy clients. Prints JSON; `--check`
exits 1 when an INIT median is over the target.

    python -m bench.cold_start [--runs 7] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("submit", "create", "poll", "finalize", "record_failure", "backstop")
TARGET_MS = 250.0

# What template.yaml sets on every function, and what Lambda sets: enough for the module-level setup to run.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "picwish-cold-start",
    "POWERTOOLS_SERVICE_NAME": "picwish-pipeline",
    "POWERTOOLS_METRICS_NAMESPACE": "PicWishPipeline",
    "POWERTOOLS_TRACE_DISABLED": os.environ.get("POWERTOOLS_TRACE_DISABLED", "false"),
    "OUTPUT_BUCKET": "picwish-output-123456789012-us-east-1",
    "TASKS_TABLE": "picwish-tasks",
    "RATE_TABLE": "picwish-slots",
    "PICWISH_API_KEY_SECRET": "picwish/api-key",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:picwish-pipeline",
}

# What a function builds on its first invocation rather than at INIT: the AWS clients its role lets it call (the
# README's IAM table; poll's S3 client is built only for base64 results, counted anyway) and, for submit, Pillow.
# INIT plus these is what a first request waits for before its step's own work.
FIRST_USE = {
    "submit": ("s3", "stepfunctions", "PIL.Image"),
    "create": ("s3", "dynamodb", "secretsmanager"),
    "poll": ("dynamodb", "secretsmanager", "s3"),
    "finalize": ("s3",),
    "record_failure": ("s3",),
    "backstop": ("s3",),
}

PROBE = """
import importlib, sys, time
start = time.perf_counter()
import app
took = time.perf_counter() - start
heavy = sorted(m for m in ("PIL", "requests", "boto3", "aws_xray_sdk", "botocore") if m in sys.modules)
import boto3
for name in sys.argv[1:]:
    importlib.import_module(name) if "." in name else boto3.client(name)
first = time.perf_counter() - start
print(round(took * 1000, 1), round(first * 1000, 1), ",".join(heavy))
"""


def measure(function: str, runs: int) -> dict:
    """INIT of one function: `runs` fresh interpreters, each importing the handler once."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "shared")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        **LAMBDA_ENV,
    }
    times, firsts, loaded = [], [], ""
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, *FIRST_USE[function]],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        times.append(float(out[0]))
        firsts.append(float(out[1]))
        loaded = out[2] if len(out) > 2 else ""
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": min(times),
        "max_ms": max(times),
        "with_first_use_ms": round(statistics.median(firsts), 1),
        "loads": loaded.split(",") if loaded else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--check", action="store_true", help=f"exit 1 when a median is over {TARGET_MS:.0f} ms")
    args = parser.parse_args(argv)
    report = {name: measure(name, args.runs) for name in FUNCTIONS}
    print(json.dumps({"target_ms": TARGET_MS, "runs": args.runs, "functions": report}, indent=2))
    over = [name for name, r in report.items() if r["median_ms"] > TARGET_MS]
    for name in over:
        sys.stderr.write(f"check: {name} cold start {report[name]['median_ms']} ms is over {TARGET_MS:.0f} ms\n")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
