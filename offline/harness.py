"""The whole pipeline for tests and benchmarks: the mock API in its own process, template.yaml deployed into a
moto server on loopback with IAM enforced, each function in sandbox processes with its own role's credentials;
helpers to upload and wait for records."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from mock_server.launcher import RunningMock, start_mock
from offline import moto_speed
from offline.iam import mirror_role, operator
from offline.lambdas import LambdaRuntime
from offline.moto_atomic import make_moto_atomic
from offline.moto_events import deliver_execution_status_changes, stop_delivering
from offline.moto_iam import enforce_iam, relax_iam
from offline.moto_layers import keep_function_layers
from offline.moto_limits import enforce_s3_limits
from offline.moto_map import read_whole_listings
from offline.moto_sfn_tasks import convert_sfn_task_names
from offline.moto_speed import speed_up_moto
from offline.moto_throttles import lift_start_limit
from offline.moto_versions import name_versions_in_events
from offline.record_reader import wait_record
from offline.stack import TEMPLATE, DeployedStack, deploy
from picwish_pipeline.scheduler.slot_table import SCHEDULE

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
    runtime: LambdaRuntime
    s3: object
    sfn: object
    endpoint_url: str | None = None

    def upload(self, key: str, body: bytes, metadata: dict | None = None) -> None:
        self.s3.put_object(Bucket=self.stack.input_bucket, Key=key, Body=body, Metadata=metadata or {})

    def place(self, objects: dict[str, bytes]) -> None:
        """Objects already in the input bucket before the pipeline was there: written while the bucket's event
        notification is off, as when a stack is deployed onto a bucket that already holds a catalog."""
        bucket = self.stack.input_bucket
        notification = self.s3.get_bucket_notification_configuration(Bucket=bucket)
        notification.pop("ResponseMetadata", None)
        self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            for key, body in objects.items():
                self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        finally:
            self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification)

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

    def forget_schedule(self) -> None:
        """Drop the create lane and the learned durations, as on a new stack (slots already reserved stay)."""
        boto3.client("dynamodb").delete_item(
            TableName=self.stack.resources["RateLimitTable"], Key={"pk": {"S": SCHEDULE}, "sk": {"N": "0"}}
        )


def build(
    mock_args: tuple[str, ...],
    parameters: dict[str, str],
    *,
    server: bool = False,
    template: Path = TEMPLATE,
    concurrency: int = 4,
) -> tuple[Pipeline, ExitStack]:
    """The whole pipeline on a moto server on loopback, with IAM enforced once it is deployed.

    `server=False` (tests): images go to the API as bytes, functions start warm. `server=True` (the local stack,
    benchmarks): images go as presigned URLs, as in production; any AWS client can inspect it at `endpoint_url`.
    `concurrency`: sandboxes per function without reserved concurrency (Lambda's account limit is 1,000; on a
    two-core machine more than a few cold starts at once only slow each other down)."""
    stack = ExitStack()
    mock = start_mock(*mock_args)
    stack.callback(mock.stop)
    endpoint = _start_moto(stack)
    runtime = stack.enter_context(LambdaRuntime(default_concurrency=concurrency).installed())
    deliver_execution_status_changes(runtime.delivery.invoke_async)
    stack.callback(stop_delivering)
    stack.callback(lift_start_limit)
    deployed = deploy(
        "picwish",
        {
            "ApiBaseUrl": mock.url,
            "InputMode": "url" if server else "bytes",
            "ResultHosts": "127.0.0.1",
            "AllowHttpResults": "true",
            **parameters,
        },
        template_path=template,
    )
    boto3.client("secretsmanager").put_secret_value(SecretId=deployed.secret_arn, SecretString=mock.api_key)
    _give_each_role_its_credentials(deployed, runtime)
    runtime.dead_letter_queues.update(_dead_letter_queues(deployed))
    enforce_iam(endpoint)
    stack.callback(_forget_credentials)
    if not server:
        runtime.preload(deployed.functions().values(), deployed.account, deployed.region)
    pipeline = Pipeline(deployed, mock, runtime, boto3.client("s3"), boto3.client("stepfunctions"), endpoint)
    return pipeline, stack


def _start_moto(stack: ExitStack) -> str:
    """A moto server on loopback, its gaps patched, this process's AWS clients pointed at it; its endpoint."""
    make_moto_atomic()
    keep_function_layers()
    enforce_s3_limits()
    name_versions_in_events()
    read_whole_listings()
    convert_sfn_task_names()
    speed_up_moto()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call is noise here
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    stack.callback(moto_server.stop)
    endpoint = f"http://127.0.0.1:{moto_server.get_host_and_port()[1]}"
    # moto's backends live in this process, shared by every server it starts: each stack begins empty.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    stack.callback(requests.post, f"{endpoint}/moto-api/reset", timeout=10)
    # Every boto3 client of this process and of the sandboxes, and moto's own Step Functions interpreter.
    environment = dict(AWS_ENV, AWS_ENDPOINT_URL=endpoint, MOTO_PORT=endpoint.rsplit(":", 1)[1])
    saved = {k: os.environ.get(k) for k in (*environment, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(environment)
    stack.callback(_restore, saved)
    boto3.setup_default_session()  # credentials are cached per session: start from this environment's
    requests.post(f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    return endpoint


def _give_each_role_its_credentials(deployed: DeployedStack, runtime: LambdaRuntime) -> None:
    """Each function signs with its execution role's permissions, the state machine with its role's, and this
    process (uploads, inspection) as an operator with all of them."""
    iam, functions = boto3.client("iam"), boto3.client("lambda")
    for name in deployed.functions().values():
        role = functions.get_function(FunctionName=name)["Configuration"]["Role"]
        runtime.credentials[name] = mirror_role(iam, role, f"{name}-role")
    sfn = boto3.client("stepfunctions")
    for logical, machine in deployed.state_machines().items():
        role = sfn.describe_state_machine(stateMachineArn=machine)["roleArn"]
        moto_speed.STATE_MACHINE_CREDENTIALS[role] = mirror_role(iam, role, f"{logical}-role")
    os.environ.update(operator(iam))
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):  # a token would make moto look for an assumed role
        os.environ.pop(name, None)
    boto3.setup_default_session()


def _dead_letter_queues(deployed: DeployedStack) -> dict[str, str]:
    """Each function's DeadLetterConfig queue (moto's Lambda keeps none): function name → queue URL."""
    body = boto3.client("cloudformation").get_template(StackName=deployed.name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    queues = {}
    for logical_id, name in deployed.functions().items():
        target = template["Resources"][logical_id]["Properties"].get("DeadLetterConfig", {}).get("TargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            queues[name] = deployed.resources[target["Fn::GetAtt"][0]]
    return queues


def _forget_credentials() -> None:
    relax_iam()
    moto_speed.STATE_MACHINE_CREDENTIALS.clear()
    boto3.setup_default_session()


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
