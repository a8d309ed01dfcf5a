"""A Task that runs another machine's execution to its end (`states:startExecution.sync:2`) on the local stack
(offline.moto_sfn_tasks): moto handed the ASL's parameter names to boto3 unconverted, and the Task failed."""

import json
import time

import boto3
from moto import mock_aws

from offline.moto_sfn_tasks import convert_sfn_task_names

ROLE = "arn:aws:iam::123456789012:role/machine"


def _run(sfn, machine: dict, execution_input: dict) -> dict:
    arn = sfn.create_state_machine(name="parent", definition=json.dumps(machine), roleArn=ROLE)["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + 30
    while (done := sfn.describe_execution(executionArn=started))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return done


def test_a_task_starts_another_execution_and_waits_for_its_end():
    convert_sfn_task_names()  # without it: States.Runtime, KeyError 'StateMachineArn'
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        child = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Result": {"seen": True}, "End": True}}}
        child_arn = sfn.create_state_machine(name="child", definition=json.dumps(child), roleArn=ROLE)[
            "stateMachineArn"
        ]
        run = {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": child_arn, "Name.$": "$.name", "Input.$": "$.input"},
            "ResultSelector": {"status.$": "$.Status", "output.$": "$.Output"},
            "End": True,
        }
        done = _run(sfn, {"StartAt": "Run", "States": {"Run": run}}, {"name": "job-1", "input": {"a": 1}})
        assert (done["status"], json.loads(done["output"])) == (
            "SUCCEEDED",
            {"status": "SUCCEEDED", "output": {"seen": True}},
        )
        child_run = sfn.describe_execution(executionArn=child_arn.replace(":stateMachine:", ":execution:") + ":job-1")
        assert json.loads(child_run["input"]) == {"a": 1}
