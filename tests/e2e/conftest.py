"""End-to-end tier: the local stack (`python -m offline stack`) as its own process, driven only through its AWS
endpoint and the mock's admin API — the way a user's own tools would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from mock_server.launcher import RunningMock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    info_file = tmp_path_factory.mktemp("stack") / "stack.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "offline",
            "stack",
            "--qps",
            "4",
            "--time-scale",
            "0.02",
            "--info-file",
            str(info_file),
            "--s3-delivery-copies",
            "2",
        ],  # S3 is at-least-once: every upload here is delivered twice
        cwd=tmp_path_factory.mktemp("cwd"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the local stack did not start")
        time.sleep(0.2)
    info = json.loads(info_file.read_text())
    yield info
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def s3(local_stack):
    return boto3.client(
        "s3",
        endpoint_url=local_stack["endpoint_url"],
        region_name=local_stack["region"],
        aws_access_key_id=local_stack["aws_access_key_id"],
        aws_secret_access_key=local_stack["aws_secret_access_key"],
    )


@pytest.fixture(scope="session")
def mock(local_stack):
    return RunningMock(url=local_stack["mock_url"], api_key=local_stack["api_key"])


# Users' own suites that test_wheel.py runs against the installed wheel, each in a virtualenv of its own.
collect_ignore = ["user_suite", "client_suite"]
