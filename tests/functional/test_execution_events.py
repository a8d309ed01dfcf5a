"""An execution that ends FAILED or ABORTED without a record still ends in one: Step Functions' status change goes
to the template's EventBridge rule and the backstop writes the record — on the local stack as on AWS
(`offline/moto_events.py`)."""

from __future__ import annotations

import json
import time

from offline.lambdas import LambdaCrash
from offline.record_reader import read_records
from tests.support import images


def _execution_of(pipeline, key: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for summary in pipeline.executions():
            described = pipeline.sfn.describe_execution(executionArn=summary["executionArn"])
            if json.loads(described["input"])["job"]["upload"]["key"] == key:
                return described
        time.sleep(0.05)
    raise AssertionError(f"no execution for {key}")


def _only_record(pipeline, key: str, timeout_s: float = 30) -> tuple[str, dict]:
    deadline = time.monotonic() + timeout_s
    while not (found := read_records(pipeline.s3, pipeline.stack.output_bucket, key)):
        assert time.monotonic() < deadline, f"no record of {key}"
        time.sleep(0.05)
    assert len(found) == 1, found
    return found[0]


def test_an_execution_stopped_mid_job_ends_in_an_aborted_record(pipeline):
    pipeline.mock.add_rule(filename="stopped.jpg", polls=10_000)  # processing for as long as it is polled
    key = "incoming/idphoto/events/stopped.jpg"
    pipeline.upload(key, images.portrait())
    execution = _execution_of(pipeline, key)
    pipeline.sfn.stop_execution(executionArn=execution["executionArn"], cause="stopped by an operator")
    kind, record = _only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", "execution aborted")
    assert record["execution"] == execution["name"]
    assert pipeline.sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "ABORTED"


def test_a_failure_step_that_keeps_dying_ends_in_the_backstop_s_record(pipeline):
    pipeline.mock.add_rule(filename="unrecorded.jpg", state=-7)
    recorder = pipeline.stack.functions()["RecordFailureFunction"]

    def dies(point, event, params=None):
        if point == "before" and "unrecorded.jpg" in json.dumps(event):
            raise LambdaCrash("the failure step died")

    pipeline.runtime.faults[recorder] = dies
    try:
        key = "incoming/idphoto/events/unrecorded.jpg"
        pipeline.upload(key, images.portrait())
        kind, record = _only_record(pipeline, key, timeout_s=60)
    finally:
        del pipeline.runtime.faults[recorder]
    assert (kind, record["reason"]) == ("failed", "execution failed")
    execution = _execution_of(pipeline, key)
    assert execution["status"] == "FAILED" and record["execution"] == execution["name"]
