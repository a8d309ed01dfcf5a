"""The benchmark as a user runs it (`python -m bench … --check`): a small run with every fault on ends with every
upload recorded once, each crash window hit, and the figures it promises; a run whose uploads are not all recorded
in time is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL_RUN = ["--n", "8", "--time-scale", "0.05", "--qps", "4", "--small-images", "--json-only", "--check"]


def run_bench(*args: str, env: dict | None = None) -> tuple[int, dict, str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "bench", *SMALL_RUN, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.parametrize("mode", ["url", "bytes"])
def test_a_faulty_run_loses_nothing_pays_once_and_hits_every_crash_window(mode):
    code, report, err = run_bench("--faults", "--input-mode", mode)
    assert code == 0, err[-3000:]
    assert (report["lost"], report["duplicate_tasks"], report["dead_letters"]) == (0, 0, 0)
    assert report["succeeded"] + report["failed"] == 8
    assert report["crashes_injected"] and all(report["crashes_injected"].values())
    assert report["cold_starts"]["count"] >= 5  # one per function at least: nothing was warmed up
    cost = report["cost_per_1000_images_usd"]
    assert cost["api_credits"] > cost["aws_total"] > 0
    assert report["settings"]["input_mode"] == mode
    # Every succeeded upload's overhead is counted under the progress shape its task took
    by_shape = report["overhead_by_progress_shape"]
    assert set(by_shape) <= {"power", "stall", "late", "steps", "noisy"}
    assert sum(figures["n"] for figures in by_shape.values()) == report["succeeded"]
    # A handful of tasks cannot place a p95 at all, and place a p50 only loosely, around the one measured
    assert len(report["overheads_s"]) == report["succeeded"]
    assert report["overhead_p95_interval_s"][1] is None
    low, high = report["overhead_p50_interval_s"]
    if 0.5 ** len(report["overheads_s"]) <= 0.05:  # values enough to bound a median from both sides (5 or more)
        assert low is not None and high is not None and low <= report["overhead_p50_s"] <= high
    else:
        assert (low, high) == (None, None)
    # Foresight polls each task once, at its end or when the API's window allows: never later than the run did
    split = report["overhead_split_s"]
    assert 0 <= split["detection_with_foresight_p50"] <= split["detection_p50"]
    assert 0 <= split["detection_with_foresight_p95"] <= split["detection_p95"]


def test_the_check_refuses_a_run_with_uploads_left_without_a_record():
    code, report, err = run_bench("--timeout", "1")  # the run stops looking before the records are written
    assert report["lost"] > 0
    assert code == 1 and "uploads ended without a record" in err


def test_the_cold_start_benchmark_reports_each_function_and_what_its_init_loads():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", "--runs", "1"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    functions = report["functions"]
    assert set(functions) == {"submit", "create", "poll", "finalize", "record_failure", "backstop"}
    assert all(0 < f["median_ms"] < f["with_first_use_ms"] for f in functions.values())
    # What a function's INIT imports is what it needs: Pillow decodes uploads only when submit judges one, the
    # X-Ray SDK only when TRACE_CALLS asks for it, requests only in the functions that call HTTP.
    for name, figures in functions.items():
        assert "PIL" not in figures["loads"] and "aws_xray_sdk" not in figures["loads"], name
        assert ("requests" in figures["loads"]) is (name in ("create", "poll", "finalize")), name
