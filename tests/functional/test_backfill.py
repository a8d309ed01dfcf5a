"""A backfill on the local stack: images already in S3 (never processed, processed, failed, refused, replaced
since), its dry run's bill, and the backfill machine (a Distributed Map) admitting them to the pipeline."""

from __future__ import annotations

import json
import time

from botocore.exceptions import ClientError

from offline.__main__ import stack_info
from offline.record_reader import read_records
from ops import backfill
from ops.status import status
from ops.target import Target
from tests.support import images
from tests.support.journal import posts_for

PREFIX = "incoming/idphoto/catalog/"


def _target(pipeline, tmp_path) -> Target:
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))
    return Target.local(info)


def _catalog(pipeline) -> dict[str, str]:
    """The bucket as a team adopting the pipeline has it; what the backfill should do with each key."""
    done, failed, refused, replaced = (f"{PREFIX}{name}.jpg" for name in ("done", "failed", "refused", "replaced"))
    pipeline.mock.add_rule(filename="failed.jpg", state=-1)
    for key, body in ((done, images.portrait()), (failed, images.portrait()), (refused, b"not an image")):
        pipeline.upload(key, body)
    pipeline.upload(replaced, images.portrait(width=80 + 1))
    for key in (done, failed, refused, replaced):
        pipeline.record(key)
    pipeline.mock.clear_rules()
    never = {f"{PREFIX}never/{i}.jpg": images.portrait(width=90 + i) for i in range(5)}
    pipeline.place({**never, replaced: images.portrait(width=80 + 2)})  # a new version, its event never sent
    return {**dict.fromkeys(never, "start"), done: "skip", failed: "rerun", refused: "skip", replaced: "start"}


def test_a_backfill_processes_what_has_no_result_once_at_the_bill_it_gave(pipeline, tmp_path):
    expected = _catalog(pipeline)
    target = _target(pipeline, tmp_path)
    s3 = pipeline.s3
    decisions, sizes = backfill.plan(target, s3, "idphoto/catalog/", reprocess=False)
    assert {d.key: d.action for d in decisions} == expected
    summary = backfill.Bill(PREFIX, decisions, sizes, target.qps, 0.0).summary(target.live_share)
    assert summary["credits_by_operation"] == {"idphoto": 7}  # idphoto: 1 credit a task
    assert summary["skip"] == {"has a result": 1, "refused: invalid input (fix the upload and upload it again)": 1}
    paid_before = sum(pipeline.mock.credits()["credits"].values())
    newest = {key: s3.head_object(Bucket=target.input_bucket, Key=key)["VersionId"] for key in expected}
    done_record = s3.get_object(Bucket=target.output_bucket, Key="results/idphoto/catalog/done.jpg/result.json")

    arn = backfill.start(target, pipeline.sfn, "idphoto/catalog/", reprocess=False)
    _ended(pipeline, arn)
    records = {key: _record_of(pipeline, key, newest[key]) for key in expected}

    for key, (kind, record) in records.items():
        assert len(read_records(s3, target.output_bucket, key)) == 1, key  # the failure record replaced
        assert kind == ("failed" if key.endswith("refused.jpg") else "result"), (key, record)
    assert sum(pipeline.mock.credits()["credits"].values()) - paid_before == summary["credits"]
    again = s3.get_object(Bucket=target.output_bucket, Key="results/idphoto/catalog/done.jpg/result.json")
    assert again["ETag"] == done_record["ETag"]  # the key that had its result was not touched
    report = status(target, since=_minutes_ago(10))
    assert report["backfill"]["status"] == "SUCCEEDED"
    assert report["backfill"]["items"]["total"] == len(expected) and report["backfill"]["items"]["failed"] == 0
    decisions, _ = backfill.plan(target, s3, PREFIX, reprocess=False)  # run again: nothing is left to pay for
    assert {d.action for d in decisions} == {"skip"}
    decisions, _ = backfill.plan(target, s3, PREFIX, reprocess=True)
    assert {d.key for d in decisions if d.action == "rerun"} == {k for k in expected if not k.endswith("refused.jpg")}


def _ended(pipeline, arn: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while (described := pipeline.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the backfill did not end"
        time.sleep(0.2)
    assert described["status"] == "SUCCEEDED", described


def _record_of(pipeline, key: str, version: str, timeout_s: float = 60) -> tuple[str, dict]:
    """The key's record once it is of `version` (a replaced key shows its old record until the new job ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for kind, record in read_records(pipeline.s3, pipeline.stack.output_bucket, key):
            if record["source"]["version_id"] == version:
                return kind, record
        assert time.monotonic() < deadline, f"no record of {key} at version {version}"
        time.sleep(0.1)


def _minutes_ago(minutes: float):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(minutes=minutes)


def test_the_command_asks_before_a_large_backfill_and_prints_the_bill(pipeline, tmp_path, monkeypatch, capsys):
    from ops import __main__ as cli

    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))
    pipeline.place({f"{PREFIX}ask/{i}.jpg": images.portrait(width=60 + i) for i in range(3)})
    machine = pipeline.stack.outputs["BackfillStateMachineArn"]
    before = len(pipeline.sfn.list_executions(stateMachineArn=machine)["executions"])
    monkeypatch.setattr(cli, "CONFIRM_OVER", 2)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    where = ["--local", "--stack-file", str(info)]
    assert cli.main([*where, "backfill", "idphoto/catalog/ask/"]) == 1  # 3 objects, no terminal to ask: no
    assert "--yes to start without asking" in capsys.readouterr().err
    assert len(pipeline.sfn.list_executions(stateMachineArn=machine)["executions"]) == before
    assert cli.main([*where, "backfill", "idphoto/catalog/ask/", "--dry-run", "--json"]) == 0
    bill = json.loads(capsys.readouterr().out)
    assert (bill["listed"], bill["process"], bill["credits"]) == (3, {"start": 3}, 3)


def test_an_upload_whose_job_never_started_runs_once_whether_the_backfill_or_its_redrive_comes_first(pipeline, ops):
    """Submit could not judge the upload ("internal error": its event goes on to Lambda's retries and the
    dead-letter queue). The backfill starts its job under the upload's own name, so the event's redrive after it
    finds the job started: one task, one result."""
    key = f"{PREFIX}stuck/never-started.jpg"

    def deny(at, event, params=None):  # reading the upload's version: submit cannot judge it
        if "never-started.jpg" in json.dumps(event) and at.startswith("before S3.") and (params or {}).get("VersionId"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected"}}, at.split(".")[-1])

    submit = pipeline.stack.resources["SubmitFunction"]
    pipeline.runtime.faults[submit] = deny
    pipeline.upload(key, images.portrait())
    assert pipeline.record(key)[1]["reason"] == "internal error"
    deadline = time.monotonic() + 30
    while not ops("dlq")["messages"]:  # after Lambda's two retries
        assert time.monotonic() < deadline, "nothing reached the dead-letter queue"
        time.sleep(0.2)
    del pipeline.runtime.faults[submit]

    planned = ops("backfill", "idphoto/catalog/stuck/", "--dry-run")
    _ended(pipeline, ops("backfill", "idphoto/catalog/stuck/", "--yes")["execution"])
    kind, _record = pipeline.record(key, wanted="result", timeout_s=60)
    assert ops("dlq", "--yes")["redriven"] == 1
    _settled(pipeline)
    assert kind == "result" and len(posts_for(pipeline, "never-started.jpg")) == 1
    assert (planned["process"], planned["credits"]) == ({"start": 1}, 1)  # under the upload's own name
    assert [k for k, _ in read_records(pipeline.s3, pipeline.stack.output_bucket, key)] == ["result"]


def _settled(pipeline, timeout_s: float = 30) -> None:
    """Every execution of the pipeline's machine has ended (a redriven upload's included)."""
    machine = pipeline.stack.outputs["StateMachineArn"]
    deadline = time.monotonic() + timeout_s
    while pipeline.sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
        assert time.monotonic() < deadline, "executions still running"
        time.sleep(0.2)
