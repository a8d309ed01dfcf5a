"""The state machine on two engines, for the differential test: moto's Step Functions (LocalStack's interpreter)
in-process, and aws-local-stepfunctions (an independent TypeScript implementation of ASL) in Node. Each Task
answers from the same script on both; Waits and Retry pauses take no time on both. What comes back from each is
the same normal form: the states entered in order (a Task with its attempts), the status, the error, the output."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.awslambda import models as lambda_models
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

ENGINE = Path(__file__).with_name("asl_engine")
ACCOUNT, REGION = "123456789012", "us-east-1"
CONTEXT = {"Execution": {"Name": "differential"}, "StateMachine": {"Id": "arn:aws:states:::stateMachine:pipeline"}}
Normal = dict[str, Any]


def tasks_named_for_their_states(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with each Task's resource a Lambda function named after the state (the script's keys)."""
    named = copy.deepcopy(definition)
    for name, state in named["States"].items():
        if state["Type"] == "Task":
            state["Resource"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{_function(name)}"
    return named


def _function(state: str) -> str:
    return state.replace("?", "")


def on_node(definition: dict[str, Any], scenarios: list[dict[str, Any]]) -> list[Normal]:
    """Every scenario on aws-local-stepfunctions, in one Node process."""
    batch = [
        {"definition": definition, "input": s["input"], "script": s["script"], "context": _context(s)}
        for s in scenarios
    ]
    done = subprocess.run(
        ["node", "run.mjs"], cwd=ENGINE, input=json.dumps(batch), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [_normal_node(outcome, definition) for outcome in json.loads(done.stdout)]


def _context(scenario: dict[str, Any]) -> dict[str, Any]:
    started = {"StartTime": "2026-12-04T00:00:00Z", "Input": scenario["input"]}
    return {**CONTEXT, "Execution": {**CONTEXT["Execution"], **started}}


def _normal_node(outcome: dict[str, Any], definition: dict[str, Any]) -> Normal:
    entered: list[list[Any]] = []
    for event in outcome["events"]:
        if event[0] == "StateEntered":
            entered.append([event[1], 1 if definition["States"][event[1]]["Type"] == "Task" else None])
        elif event[0] == "StateRetried":
            entered[-1][1] += 1
    error = outcome["error"]
    return {
        "entered": [tuple(e) for e in entered],
        "status": outcome["status"],
        "error": None if error is None else error["name"],
        "output": outcome["output"],
    }


def on_moto(definition: dict[str, Any], scenarios: list[dict[str, Any]], monkeypatch: Any) -> list[Normal]:
    """Every scenario on moto's Step Functions, each Task a moto Lambda function answering from the script."""
    script: dict[str, list[dict[str, Any]]] = {}
    answered: dict[str, int] = {}
    states = {_function(name): name for name, state in definition["States"].items() if state["Type"] == "Task"}

    def answer(fn: Any, event: Any = None) -> tuple[str, bool, str]:
        name = states[fn.function_name]
        answered[name] = answered.get(name, -1) + 1
        steps = script.get(name, [])
        if answered[name] >= len(steps):
            return json.dumps({"errorType": "ScriptEnded", "errorMessage": f"no answer scripted for {name}"}), True, ""
        step = steps[answered[name]]
        time.sleep(step.get("delay_ms", 0) / 1000)
        if "error" in step:
            return json.dumps({"errorType": step["error"], "errorMessage": step.get("cause", step["error"])}), True, ""
        return json.dumps(step["output"]), False, ""

    monkeypatch.setattr(lambda_models.LambdaFunction, "_invoke_lambda", answer)
    monkeypatch.setattr(retrier_decl, "time", _NoPause())
    normals = []
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn, machine = _deploy(definition)
        for number, scenario in enumerate(scenarios):
            script.clear()
            script.update(scenario["script"])
            answered.clear()
            started = sfn.start_execution(
                stateMachineArn=machine, name=f"s{number}", input=json.dumps(scenario["input"])
            )
            arn = started["executionArn"]
            normals.append(_normal_moto(sfn, arn, definition))
    return normals


class _NoPause:
    """Retry pauses fast-forwarded, as aws-local-stepfunctions' retryIntervalOverrides does on the other side."""

    @staticmethod
    def sleep(seconds: float) -> None:
        return None


def _deploy(definition: dict[str, Any]) -> tuple[Any, str]:
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="engine", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    lam = boto3.client("lambda", region_name=REGION)
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            lam.create_function(
                FunctionName=_function(name),
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
            )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(name="pipeline", definition=json.dumps(definition), roleArn=role)
    return sfn, machine["stateMachineArn"]


def _normal_moto(sfn: Any, arn: str, definition: dict[str, Any], timeout_s: float = 60) -> Normal:
    deadline = time.monotonic() + timeout_s
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.02)
    entered: list[list[Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        for event in page["events"]:
            if event["type"].endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                entered.append([name, 0 if definition["States"][name]["Type"] == "Task" else None])
            elif event["type"] == "LambdaFunctionScheduled":
                entered[-1][1] += 1
    status = described["status"]
    return {
        "entered": [tuple(e) for e in entered],
        "status": status,
        "error": described.get("error"),
        "output": json.loads(described["output"]) if status == "SUCCEEDED" else None,
    }
