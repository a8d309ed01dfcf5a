"""Each handler invoked through Lambda (moto → a local sandbox) on its sample event from events/."""

from __future__ import annotations

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto.stepfunctions.parser import models as sfn_parser_models

from offline.harness import build
from picwish_pipeline.uploads import UploadRef
from tests.support import images

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="module")
def pipeline():
    # Eight submits of one event at once, as an account's concurrency (1,000 by default) runs them.
    built, stack = build(("--qps", "0", "--time-scale", "0.01"), {"ApiQps": "20", "WaitScale": "0.01"}, concurrency=10)
    with stack:
        yield built


def invoke(pipeline, logical_id: str, payload: dict) -> dict:
    response = boto3.client("lambda").invoke(
        FunctionName=pipeline.stack.resources[logical_id], Payload=json.dumps(payload).encode()
    )
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def record_at(pipeline, key: str) -> dict:
    return json.loads(pipeline.output(key))


def uploaded(pipeline, s3_object: dict, key: str, body: bytes) -> None:
    """Upload `key` and make the event's object (its `s3.object`) name the version S3 gave it, as a real event
    of a versioned bucket does."""
    s3_object["versionId"] = pipeline.s3.put_object(Bucket=pipeline.stack.input_bucket, Key=key, Body=body)["VersionId"]


def uploaded_job(pipeline, state: dict, body: bytes) -> dict:
    """A step's sample input whose upload exists, at the version the input names."""
    upload = state["job"]["upload"]
    upload["version_id"] = pipeline.s3.put_object(Bucket=upload["bucket"], Key=upload["key"], Body=body)["VersionId"]
    return state


def test_s3_test_event_is_a_no_op(pipeline):
    before = len(pipeline.executions())
    assert invoke(pipeline, "SubmitFunction", event("s3-test-event.json")) == {
        "started": 0,
        "duplicate": 0,
        "rejected": 0,
        "ignored": 1,
    }
    assert len(pipeline.executions()) == before


def test_every_record_is_decoded_and_handled(pipeline):
    multi = event("s3-put-multi.json")
    uploaded(pipeline, multi["Records"][1]["s3"]["object"], "incoming/resize/batch/c.jpg", images.portrait())
    counts = invoke(pipeline, "SubmitFunction", multi)
    assert counts["rejected"] == 3
    assert record_at(pipeline, "failed/idphoto/batch/a b.jpg.json")["reason"] == "object missing"
    assert record_at(pipeline, "failed/resize/batch/c.jpg.json")["reason"] == "unknown operation"
    missing = record_at(pipeline, "failed/correction/batch/ünï cödé.jpg.json")
    assert missing["source"]["key"] == "incoming/correction/batch/ünï cödé.jpg"


@pytest.mark.parametrize(
    "operation", ["idphoto", "correction", "inpaint", "retouching-collection", "clothing-segmentation"]
)
def test_put_event_per_operation_starts_one_execution_and_a_redelivery_none(pipeline, operation):
    sample = event(f"s3-put-{operation}.json")
    upload = UploadRef.from_event_record(sample["Records"][0])
    if operation in ("inpaint", "retouching-collection"):
        mask_key = upload.key.replace("incoming/", "masks/", 1).rsplit(".", 1)[0] + ".png"
        pipeline.s3.put_object(Bucket=upload.bucket, Key=mask_key, Body=images.mask(80, 60))
    uploaded(pipeline, sample["Records"][0]["s3"]["object"], upload.key, images.photo(80, 60, fmt="PNG"))
    upload = UploadRef.from_event_record(sample["Records"][0])
    # The sample is the very event S3 delivers for this upload: whichever of the two comes first starts the job.
    sent: list[dict] = []
    submit = pipeline.stack.resources["SubmitFunction"]
    pipeline.runtime.faults[submit] = lambda at, event, params: (
        sent.append(params) if at == "before SFN.StartExecution" else None
    )
    try:
        first = invoke(pipeline, "SubmitFunction", sample)
        assert first["started"] + first["duplicate"] == 1 and first["rejected"] == 0
        # A redelivery: Step Functions returns the running execution (same name, same input) or refuses the name
        # once it closed; either way nothing new starts.
        again = invoke(pipeline, "SubmitFunction", sample)
        assert again["started"] + again["duplicate"] == 1 and again["rejected"] == 0
    finally:
        pipeline.runtime.faults.pop(submit, None)
    # Step Functions returns the running execution only when name AND input are the same (moto answers by name
    # alone): every delivery must build byte-identical input.
    mine = [p for p in sent if str(upload.sequencer) in p["input"]]  # not S3's own delivery of the upload
    assert len(mine) == 2 and mine[0]["name"] == mine[1]["name"] and mine[0]["input"] == mine[1]["input"]
    names = [e["name"] for e in pipeline.executions()]
    assert names.count(upload.execution_name(operation)) == 1
    assert " " not in upload.execution_name(operation) and len(upload.execution_name(operation)) <= 80


def test_one_event_delivered_to_many_submits_at_once_starts_one_execution(pipeline):
    sample = event("s3-put-idphoto.json")
    record = sample["Records"][0]["s3"]["object"]
    record["key"] = record["key"].replace(".jpg", "-concurrent.jpg")
    upload = UploadRef.from_event_record(sample["Records"][0])
    pipeline.runtime.wait_idle()  # earlier tests' deliveries done, and S3 delivers none of this upload:
    pipeline.runtime.s3_delivery_copies = 0  # the eight submits below are the only ones, all at once
    try:
        uploaded(pipeline, record, upload.key, images.photo(80, 60, fmt="PNG"))
        upload = UploadRef.from_event_record(sample["Records"][0])
        with ThreadPoolExecutor(max_workers=8) as pool:
            counts = list(pool.map(lambda _: invoke(pipeline, "SubmitFunction", sample), range(8)))
    finally:
        pipeline.runtime.s3_delivery_copies = 1
    # StartExecution of a running name with the same input answers as if it started it: "started" or "duplicate"
    assert sum(c["started"] + c["duplicate"] for c in counts) == 8 and sum(c["rejected"] for c in counts) == 0
    names = [e["name"] for e in pipeline.executions()]
    assert names.count(upload.execution_name("idphoto")) == 1


def test_starts_of_one_execution_at_the_same_instant_run_it_once(pipeline, monkeypatch):
    # What two submits of one upload do when S3 delivers its event twice at once: Step Functions starts one.
    # moto copies the state machine between its name check and adding the execution; a slower copy (as of the
    # pipeline's machine on the busy local stack, where the race was seen) holds that window open.
    real_deepcopy = copy.deepcopy

    def slow_deepcopy(*args, **kwargs):
        time.sleep(0.01)
        return real_deepcopy(*args, **kwargs)

    monkeypatch.setattr(sfn_parser_models, "copy", SimpleNamespace(deepcopy=slow_deepcopy))
    sfn = boto3.client("stepfunctions")
    waiting = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}}}
    arn = sfn.create_state_machine(
        name="same-instant", definition=json.dumps(waiting), roleArn="arn:aws:iam::123456789012:role/test"
    )["stateMachineArn"]
    barrier = threading.Barrier(8)

    def start(_):
        barrier.wait()
        return sfn.start_execution(stateMachineArn=arn, name="upload", input="{}")["executionArn"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = set(pool.map(start, range(8)))
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    for execution in executions:
        sfn.stop_execution(executionArn=execution["executionArn"])
    assert len(started) == 1 and len(executions) == 1


def test_create_is_idempotent_per_execution(pipeline):
    state = uploaded_job(pipeline, event("state-create.json"), images.portrait())
    # What its polls will see, in turn (S3's own delivery of the upload makes a job of the same file: it too).
    pipeline.mock.add_rule(filename="portrait.jpg", script="2,4,1", polls=3)
    first = invoke(pipeline, "CreateFunction", state)
    for _ in range(30):  # the QPS budget may be busy with other jobs: come back when told, as the machine does
        if first["status"] != "wait":
            break
        time.sleep(first["wait_s"])
        first = invoke(pipeline, "CreateFunction", {**state, "create": first})
    assert first["status"] == "created" and first["api_calls"] == 1
    again = invoke(pipeline, "CreateFunction", state)  # a retried step after the API accepted the task
    assert (again["status"], again["task_id"], again["api_calls"]) == ("created", first["task_id"], 0)
    creates = [e for e in pipeline.mock.requests(method="POST") if e["task_id"] == first["task_id"]]
    assert len(creates) == 1 and creates[0]["fields"]["image_file"]["filename"] == "portrait.jpg"

    poll = event("state-poll.json")
    poll["create"]["task_id"] = first["task_id"]
    polled = invoke(pipeline, "PollFunction", poll)
    assert (polled["polls"], polled["state"], polled["phase"]) == (1, 2, "processing")


def test_record_failure_for_a_timeout(pipeline):
    state = uploaded_job(pipeline, event("state-record-failure-timeout.json"), images.portrait())
    body = invoke(pipeline, "RecordFailureFunction", state)
    assert body == {"status": "failed", "reason": "timeout", "failure_key": "failed/idphoto/fixtures/gone.jpg.json"}
    record = record_at(pipeline, body["failure_key"])
    assert (record["task_id"], record["state"], record["api_calls"]) == ("TASK-TIMEOUT", 4, 13)
    assert record["message"] == "the task was still processing after 240 s"


def test_record_failure_for_a_caught_error_keeps_no_stack_trace(pipeline):
    state = uploaded_job(pipeline, event("state-record-failure-caught.json"), images.portrait())
    body = invoke(pipeline, "RecordFailureFunction", state)
    record = record_at(pipeline, body["failure_key"])
    assert record["reason"] == "step failed" and record["message"] == "APIServerError talking to the API"
    assert "stackTrace" not in json.dumps(record) and "app.py" not in json.dumps(record)


def test_backstop_writes_a_record_only_when_none_exists(pipeline):
    failure_key = "failed/idphoto/fixtures/gone.jpg.json"
    pipeline.s3.delete_object(Bucket=pipeline.stack.output_bucket, Key=failure_key)
    pipeline.s3.delete_object(Bucket=pipeline.stack.output_bucket, Key="results/idphoto/fixtures/gone.jpg/result.json")
    failed = event("eventbridge-execution-failed.json")
    state = uploaded_job(pipeline, json.loads(failed["detail"]["input"]), images.portrait())
    failed["detail"]["input"] = json.dumps(state)
    body = invoke(pipeline, "BackstopFunction", failed)
    assert body["reason"] == "execution failed"
    record = record_at(pipeline, failure_key)
    assert record["message"] == "The SecondsPath parameter cannot be parsed as a long value"
    assert invoke(pipeline, "BackstopFunction", failed) == {"status": "already recorded"}
