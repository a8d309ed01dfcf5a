"""The handler wrapper: Powertools' Logger with the Lambda context, and one EMF metric line per invocation."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from picwish_pipeline.metrics import Measure
from picwish_pipeline.runtime import step_handler

EVENT = Path(__file__).resolve().parents[2] / "events" / "state-create.json"


@pytest.fixture
def lambda_env(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # A service of its own: Powertools binds a service's log handler to the stdout of its first Logger.
        "POWERTOOLS_SERVICE_NAME": "runtime-test",
        "POWERTOOLS_METRICS_NAMESPACE": "PicWishPipeline",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)


def context(i):
    return SimpleNamespace(
        function_name="picwish-CreateFunction",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:picwish-CreateFunction",
        aws_request_id=f"req-{i}",
    )


def test_each_invocation_logs_its_own_keys_and_flushes_its_own_metrics(lambda_env, capsys):
    handler = step_handler(
        lambda _services, event: {
            "status": "wait",
            "api_calls": event["n"],
            "slot_at": 1000.0 + event["n"],
            "wait_s": 0,
            "spare": event["n"] == 2,
        },
        measure=lambda result: [Measure("api_calls", result["api_calls"])],
    )
    for i in range(3):
        event = json.loads(EVENT.read_text())  # a CreateTask input, one per execution
        event.update(execution=f"exec-{i}", n=i + 1)
        event["job"]["upload"]["key"] = f"incoming/idphoto/{i}.jpg"
        assert handler(event, context(i))["api_calls"] == i + 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logs = [line for line in lines if line.get("message") == "step done"]
    metrics = [line for line in lines if "_aws" in line]
    assert [(log["function_request_id"], log["execution"], log["object_key"]) for log in logs] == [
        (f"req-{i}", f"exec-{i}", f"incoming/idphoto/{i}.jpg") for i in range(3)
    ]
    assert [log["cold_start"] for log in logs] == [True, False, False]
    # when the job calls the API next is in the log; what the step did not set is left out
    assert [(log["status"], log["slot_at"], log["wait_s"], log["spare"], "progress" in log) for log in logs] == [
        ("wait", 1000.0 + i + 1, 0, i == 1, False) for i in range(3)
    ]
    assert [m["api_calls"] for m in metrics] == [[1.0], [2.0], [3.0]]  # one flush per invocation, never merged
    assert all(m["service"] == "runtime-test" and m["operation"] == "idphoto" for m in metrics)


def test_a_handler_without_counts_publishes_no_metrics(lambda_env, capsys):
    handler = step_handler(lambda _services, _event: {"status": "succeeded"})
    handler(json.loads(EVENT.read_text()), context(0))
    assert not [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
