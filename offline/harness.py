"""The whole pipeline in one process for tests and benchmarks: the mock API in its own process, template.yaml
deployed into moto (decorator mode), the in-process Lambda runtime; helpers to upload and wait for records."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

import boto3
import requests
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from mock_server.pytest_plugin import RunningMock, start_mock
from offline.lambdas import InProcessLambdaRuntime
from offline.moto_atomic import make_moto_atomic
from offline.moto_limits import enforce_s3_limits
from offline.moto_speed import speed_up_moto
from offline.records import wait_record
from offline.stack import DeployedStack, deploy

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass
class Pipeline:
    stack: DeployedStack
    mock: RunningMock
    runtime: InProcessLambdaRuntime
    s3: object
    sfn: object
    endpoint_url: str | None = None

    def upload(self, key: str, body: bytes, metadata: dict | None = None) -> None:
        self.s3.put_object(Bucket=self.stack.input_bucket, Key=key, Body=body, Metadata=metadata or {})

    def record(self, key: str, timeout_s: float = 60, wanted: str | None = None) -> tuple[str, dict]:
        """Wait for the job of `incoming/...` key `key` to end; ("result" | "failed", its record)."""
        return wait_record(self.s3, self.stack.output_bucket, key, timeout_s=timeout_s, wanted=wanted)

    def invoke(self, logical_id: str, payload: dict) -> dict:
        """Invoke one of the stack's functions through Lambda, as `aws lambda invoke` would; its JSON answer."""
        response = boto3.client("lambda").invoke(
            FunctionName=self.stack.resources[logical_id], Payload=json.dumps(payload).encode()
        )
        body = json.loads(response["Payload"].read())
        if "FunctionError" in response:
            raise RuntimeError(f"{logical_id} failed: {body}")
        return body

    def output(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.stack.output_bucket, Key=key)["Body"].read()

    def execution_stats(self, name: str) -> dict:
        """State transitions (states entered) and Lambda invocations of one job's execution."""
        arn = f"{self.stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
        deadline = time.monotonic() + 30
        while self.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)  # the record is written one state before the execution ends
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        steps = [i for i in self.runtime.invocations if isinstance(i.event, dict) and i.event.get("execution") == name]
        return {
            "state_transitions": sum(1 for e in events if e["type"].endswith("StateEntered")),
            "lambda_invocations": len(steps) + 1,  # + the submit that started it
        }

    def execution_for(self, key: str) -> str:
        """The name of the (latest) execution started for the upload at `key`."""
        for summary in sorted(self.executions(), key=lambda e: e["startDate"], reverse=True):
            described = self.sfn.describe_execution(executionArn=summary["executionArn"])
            if json.loads(described["input"])["job"]["upload"]["key"] == key:
                return summary["name"]
        raise LookupError(key)

    def runtime_memory(self, function_name: str) -> int:
        """The function's configured memory (MB), as the template sets it."""
        return int(boto3.client("lambda").get_function(FunctionName=function_name)["Configuration"]["MemorySize"])

    def executions(self) -> list[dict]:
        return self.sfn.list_executions(stateMachineArn=self.stack.state_machine_arn)["executions"]


def build(
    mock_args: tuple[str, ...], parameters: dict[str, str], *, server: bool = False
) -> tuple[Pipeline, ExitStack]:
    """The whole pipeline. `server=False`: moto in decorator mode (tests; images go to the API as bytes).
    `server=True`: moto as a real HTTP server on loopback (the local stack): presigned URLs reach it, so images
    go as URLs as in production, and any AWS client can inspect it at `endpoint_url`."""
    make_moto_atomic()
    enforce_s3_limits()
    speed_up_moto()
    stack = ExitStack()
    environment = dict(AWS_ENV)
    mock = start_mock(*mock_args)
    stack.callback(mock.stop)
    endpoint = None
    if server:
        # Everything offline shares one interpreter: shorter GIL turns keep the calls that wait for a QPS slot
        # on time while moto and the other executions work.
        sys.setswitchinterval(0.001)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call is noise here
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto_server.start()
        stack.callback(moto_server.stop)
        endpoint = f"http://127.0.0.1:{moto_server.get_host_and_port()[1]}"
        # Every boto3 client of this process (the handlers' too) and moto's own Step Functions interpreter.
        environment.update(AWS_ENDPOINT_URL=endpoint, MOTO_PORT=endpoint.rsplit(":", 1)[1])
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    stack.callback(_restore, saved)
    if server:
        requests.post(
            f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
        )
    else:
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
    runtime = stack.enter_context(InProcessLambdaRuntime().installed())
    deployed = deploy(
        "picwish",
        {
            "ApiBaseUrl": mock.url,
            # In decorator mode the mock cannot reach moto's presigned URLs; in server mode it can.
            "InputMode": "url" if server else "bytes",
            "ResultHosts": "127.0.0.1",
            "AllowHttpResults": "true",
            **parameters,
        },
    )
    boto3.client("secretsmanager").put_secret_value(SecretId=deployed.secret_arn, SecretString=mock.api_key)
    runtime.preload(deployed.functions().values(), deployed.account, deployed.region)
    pipeline = Pipeline(deployed, mock, runtime, boto3.client("s3"), boto3.client("stepfunctions"), endpoint)
    return pipeline, stack


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
