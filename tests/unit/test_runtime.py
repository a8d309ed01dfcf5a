"""The handler wrapper under concurrent invocations in one process, as the local stack runs them."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from picwish.runtime import step_handler

EVENT = Path(__file__).resolve().parents[2] / "events" / "state-create.json"


@pytest.fixture
def lambda_env(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # A service of its own: Powertools binds a service's log handler to the stdout of its first Logger.
        "POWERTOOLS_SERVICE_NAME": "runtime-concurrency-test",
        "POWERTOOLS_METRICS_NAMESPACE": "PicWishPipeline",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)


def test_concurrent_invocations_keep_their_own_log_keys_and_metrics(lambda_env, capsys):
    barrier = threading.Barrier(16)

    def step(_services, event):
        barrier.wait()  # every invocation is inside the handler at once
        time.sleep(0.01)
        return {"status": "wait", "api_calls": int(event["execution"].split("-")[1])}

    handler = step_handler(step, metric_keys=("api_calls",))

    def invoke(i):
        event = json.loads(EVENT.read_text())  # a CreateTask input, one per execution
        event["execution"] = f"exec-{i}"
        event["job"]["upload"]["key"] = f"incoming/idphoto/{i}.jpg"
        return handler(event, SimpleNamespace(function_name="fn", aws_request_id=f"req-{i}"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(invoke, range(16)))
    assert [r["api_calls"] for r in results] == list(range(16))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logs = [line for line in lines if line.get("message") == "step done"]
    metrics = [line for line in lines if "_aws" in line]
    assert len(logs) == 16 and len(metrics) == 16
    for log in logs:  # each line carries its own invocation's keys, never another's
        i = log["function_request_id"].split("-")[1]
        assert (log["execution"], log["object_key"]) == (f"exec-{i}", f"incoming/idphoto/{i}.jpg")
    assert sorted(m["api_calls"][0] for m in metrics) == list(range(16))  # EMF holds each value in a list
    assert all(m["service"] == "runtime-concurrency-test" and m["operation"] == "idphoto" for m in metrics)
