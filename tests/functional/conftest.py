"""Functional tier: the mock's Flask app in-process (test client), moto for AWS; loopback only."""

import json

import boto3
import pytest
from moto import mock_aws

from mock_server import MockConfig, create_app
from offline.__main__ import stack_info
from offline.harness import AWS_ENV, build
from offline.stack import table_keys
from ops.__main__ import main as picwish_ops

RATE_TABLE_KEYS = table_keys("RateLimitTable")

KEY = "func-key"
OTHER_KEY = "func-key-2"


@pytest.fixture
def mock_config():
    return MockConfig(api_keys=(KEY, OTHER_KEY), qps=0, time_scale=0.001, admin=True)


@pytest.fixture
def app(mock_config):
    return create_app(mock_config)


@pytest.fixture
def backend(app):
    return app.extensions["picwish_mock"]


@pytest.fixture
def web(app):
    return app.test_client()


@pytest.fixture
def rate_table():
    """In-process DynamoDB (moto) with the QPS table "slots", keyed as template.yaml's RateLimitTable."""
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(TableName="slots", **RATE_TABLE_KEYS)
        yield client


@pytest.fixture(scope="session", autouse=True)
def aws_credentials():
    """Fake credentials and a region for moto, per its docs: nothing can reach a real account."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def fast_pipeline():
    """The whole pipeline at 1 % of real time and 5 QPS; correction's deadline is 2 s and a job may meet three
    429s, so timeouts and "rate limited" are reached in seconds."""
    deadlines = {op: 240 for op in ("retouching-collection", "inpaint", "clothing-segmentation", "idphoto")}
    parameters = {"ApiQps": "5", "WaitScale": "0.01", "MaxThrottles": "3"}
    built, stack = build(
        ("--qps", "5", "--time-scale", "0.01"), {**parameters, "Deadlines": json.dumps({**deadlines, "correction": 2})}
    )
    with stack:
        yield built


@pytest.fixture
def pipeline(fast_pipeline):
    """The shared fast pipeline, handed back as the test found it: no fault hooks, single deliveries, no rules,
    nothing learned about processing times."""
    yield fast_pipeline
    fast_pipeline.forget_schedule()
    fast_pipeline.runtime.faults.clear()
    fast_pipeline.runtime.s3_delivery_copies = 1
    fast_pipeline.mock.clear_rules()


@pytest.fixture
def ops(pipeline, tmp_path, capsys):
    """Run `picwish-ops --local … --json` in-process against this module's stack; its JSON answer."""
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))

    def run(*args: str) -> dict:
        capsys.readouterr()
        assert picwish_ops(["--local", "--stack-file", str(info), *args, "--json"]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the sandboxes log to stdout too

    return run
