"""A key re-uploaded, deleted or redriven while its job runs: the key's one record describes its newest version,
a version superseded before its create is never paid for, the API only fetches the bytes that were checked, and
two redrives of one failure pay at most once. The whole pipeline: template.yaml in moto, the real ASL, the mock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from offline.__main__ import stack_info
from offline.record_reader import read_records
from ops.__main__ import main as ops_main
from picwish_pipeline.uploads import parse_job_path
from tests.support import images
from tests.support.journal import posts_for

ROOT = Path(__file__).resolve().parents[2]


def put(pipeline, key: str, body: bytes, metadata: dict | None = None) -> str:
    """Upload one version; its version id (the input bucket is versioned)."""
    answer = pipeline.s3.put_object(Bucket=pipeline.stack.input_bucket, Key=key, Body=body, Metadata=metadata or {})
    return answer["VersionId"]


def record_of_version(pipeline, key: str, version: str, timeout_s: float = 60) -> tuple[str, dict]:
    """Wait until the key's record describes `version`; (kind, record)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        present = read_records(pipeline.s3, pipeline.stack.output_bucket, key)
        for kind, record in present:
            if record["source"].get("version_id") == version:
                return kind, record
        time.sleep(0.05)
    raise AssertionError(f"no record of {key} version {version}: {present}")


def wait_for(condition, timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def executions_ended(pipeline, key: str, count: int, timeout_s: float = 60) -> list[dict]:
    """The `count` executions of `key`, once every one has ended."""

    def of_key() -> list[dict]:
        found = []
        for summary in pipeline.executions():
            described = pipeline.sfn.describe_execution(executionArn=summary["executionArn"])
            if json.loads(described["input"])["job"]["upload"]["key"] == key:
                found.append(described)
        return found

    wait_for(lambda: len(ended := of_key()) == count and all(e["status"] != "RUNNING" for e in ended), timeout_s, key)
    return of_key()


def output_keys(pipeline, key: str) -> list[str]:
    prefix = parse_job_path(key).result_prefix
    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.stack.output_bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in listed.get("Contents", []))


def only_record(pipeline, key: str) -> tuple[str, dict]:
    present = read_records(pipeline.s3, pipeline.stack.output_bucket, key)
    assert len(present) == 1, present
    return present[0]


def test_the_input_bucket_is_versioned_and_replaced_versions_expire(pipeline):
    bucket, output = pipeline.stack.input_bucket, pipeline.stack.output_bucket
    assert pipeline.s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = {r["ID"]: r for r in pipeline.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["ExpireReplacedVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
    assert rules["RemoveLoneDeleteMarkers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    staged = {r["ID"]: r for r in pipeline.s3.get_bucket_lifecycle_configuration(Bucket=output)["Rules"]}
    assert staged["ExpireStagedOutputs"]["Expiration"]["Days"] == 1


def test_events_name_the_version_and_its_record_does_too(pipeline):
    key = "incoming/idphoto/versions/named.jpg"
    version = put(pipeline, key, images.portrait())
    kind, record = record_of_version(pipeline, key, version)
    assert kind == "result"
    assert record["source"]["version_id"] == version


def test_an_older_job_finishing_later_never_replaces_the_newer_uploads_record(pipeline):
    key = "incoming/idphoto/versions/slow.jpg"
    pipeline.mock.add_rule(filename="slow.jpg", polls=12, times=1)  # v1's task: done at its 12th poll
    first = put(pipeline, key, images.portrait())
    wait_for(lambda: any(e["status"] == 200 for e in posts_for(pipeline, "slow.jpg")), what="v1's create")
    second = put(pipeline, key, images.portrait(width=96))
    assert record_of_version(pipeline, key, second)[0] == "result"
    ended = executions_ended(pipeline, key, 2)
    assert sorted(e["status"] for e in ended) == ["SUCCEEDED", "SUCCEEDED"]
    outputs = {json.loads(e["input"])["job"]["upload"]["version_id"]: json.loads(e["output"]) for e in ended}
    assert outputs[first]["result"]["status"] == "superseded"
    assert only_record(pipeline, key)[1]["source"]["version_id"] == second  # v1 finished last and wrote nothing
    superseded = pipeline.s3.get_object(
        Bucket=pipeline.stack.output_bucket, Key=f"superseded/idphoto/versions/slow.jpg/{first}.json"
    )
    history = json.loads(superseded["Body"].read())
    assert (history["outcome"], history["newest_version_id"]) == ("superseded", second)
    assert history["task_id"]  # paid before it was superseded: the record says which task


def test_a_version_superseded_before_its_create_is_never_paid_and_the_refusal_stays(pipeline):
    key = "incoming/idphoto/versions/waits.jpg"
    pipeline.mock.add_rule(filename="waits.jpg", create_status=429, times=3)  # v1's create waits its turn
    first = put(pipeline, key, images.portrait())
    wait_for(lambda: len(posts_for(pipeline, "waits.jpg")) >= 1, what="v1's first 429")
    second = put(pipeline, key, b"this is not an image")
    kind, record = record_of_version(pipeline, key, second)
    assert (kind, record["reason"]) == ("failed", "invalid input")
    ended = executions_ended(pipeline, key, 1)
    assert json.loads(ended[0]["output"])["result"]["status"] == "superseded"
    assert [e["status"] for e in posts_for(pipeline, "waits.jpg") if e["status"] == 200] == []  # nothing paid
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"], record["source"]["version_id"]) == ("failed", "invalid input", second)
    assert json.loads(ended[0]["input"])["job"]["upload"]["version_id"] == first


def test_a_refused_reupload_replaces_the_old_result_and_its_outputs(pipeline):
    key = "incoming/idphoto/versions/refused.jpg"
    first = put(pipeline, key, images.portrait())
    assert record_of_version(pipeline, key, first)[0] == "result"
    assert output_keys(pipeline, key) == ["image.png", "result.json"]
    second = put(pipeline, key, b"not an image either")
    assert record_of_version(pipeline, key, second)[0] == "failed"
    assert only_record(pipeline, key)[1]["source"]["version_id"] == second
    assert output_keys(pipeline, key) == []


def test_a_reupload_with_another_format_leaves_no_stale_output(pipeline):
    key = "incoming/idphoto/versions/format.jpg"
    first = put(pipeline, key, images.portrait(), {"format": "png"})
    assert record_of_version(pipeline, key, first)[0] == "result"
    assert output_keys(pipeline, key) == ["image.png", "result.json"]
    second = put(pipeline, key, images.portrait(), {"format": "jpg"})
    kind, record = record_of_version(pipeline, key, second)
    assert kind == "result"
    assert output_keys(pipeline, key) == ["image.jpg", "result.json"]
    assert record["outputs"] == {"image": "results/idphoto/versions/format.jpg/image.jpg"}


def test_an_input_deleted_before_its_create_is_never_paid_and_ends_in_one_record(pipeline):
    key = "incoming/idphoto/versions/deleted.jpg"
    pipeline.mock.add_rule(filename="deleted.jpg", create_status=429, times=3)
    put(pipeline, key, images.portrait())
    wait_for(lambda: len(posts_for(pipeline, "deleted.jpg")) >= 1, what="the first 429")
    pipeline.s3.delete_object(Bucket=pipeline.stack.input_bucket, Key=key)
    (ended,) = executions_ended(pipeline, key, 1)
    assert (ended["status"], ended["error"]) == ("FAILED", "JobFailed")
    assert [e for e in posts_for(pipeline, "deleted.jpg") if e["status"] == 200] == []
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", "object missing")


def test_a_failed_job_ends_its_execution_in_a_fail_state(pipeline):
    key = "incoming/idphoto/versions/fails.jpg"
    pipeline.mock.add_rule(filename="fails.jpg", state=-7)
    version = put(pipeline, key, images.portrait())
    assert record_of_version(pipeline, key, version)[1]["reason"] == "task failed"
    (ended,) = executions_ended(pipeline, key, 1)
    assert ended["status"] == "FAILED"
    assert ended["error"] == "JobFailed"
    assert only_record(pipeline, key)[0] == "failed"  # the backstop saw the record of this version and kept it


# -- redrive ---------------------------------------------------------------------------------------------------


def run_ops(pipeline, tmp_path, *args: str) -> int:
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))
    return ops_main(["--local", "--stack-file", str(info), *args, "--json"])


def test_two_redrives_at_once_pay_at_most_once(pipeline, tmp_path):
    key = "incoming/idphoto/versions/redriven.jpg"
    pipeline.mock.add_rule(filename="redriven.jpg", state=-5, times=1)
    version = put(pipeline, key, images.portrait())
    assert record_of_version(pipeline, key, version)[1]["reason"] == "task failed"
    before = len([e for e in posts_for(pipeline, "redriven.jpg") if e["status"] == 200])
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))
    # Two operators at once: two processes, as two terminals would run them.
    command = [sys.executable, "-m", "ops", "redrive", "--local", "--stack-file", str(info), "--since", "1h", "--yes"]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    listed = pipeline.s3.list_object_versions(Bucket=pipeline.stack.input_bucket, Prefix=key)
    assert len([v for v in listed["Versions"] if v["Key"] == key]) == 2  # the upload and one redrive copy
    kind, _ = pipeline.record(key, wanted="result")
    assert kind == "result"
    paid = len([e for e in posts_for(pipeline, "redriven.jpg") if e["status"] == 200])
    assert paid == before + 1


def test_redrive_judges_a_result_by_the_exact_key(pipeline, tmp_path):
    failed, longer = "incoming/idphoto/versions/pfx.jpg", "incoming/idphoto/versions/pfx.jpg/result.json.jpg"
    pipeline.mock.add_rule(filename="pfx.jpg", state=-5, times=1)
    version = put(pipeline, failed, images.portrait())
    assert record_of_version(pipeline, failed, version)[1]["reason"] == "task failed"
    other = put(pipeline, longer, images.portrait())
    assert record_of_version(pipeline, longer, other)[0] == "result"
    assert run_ops(pipeline, tmp_path, "redrive", "--since", "1h", "--yes") == 0
    assert pipeline.record(failed, wanted="result")[0] == "result"


def test_a_redrive_resumes_a_paid_task_instead_of_paying_again(pipeline, tmp_path):
    key = "incoming/correction/versions/resumed.jpg"  # correction's deadline here is 2 s
    pipeline.mock.add_rule(filename="resumed.jpg", query_status=401, query_status_count=1000)  # a revoked key
    version = put(pipeline, key, images.portrait())
    kind, record = record_of_version(pipeline, key, version)
    assert (kind, record["reason"], record["status"]) == ("failed", "timeout", 401)
    task = record["task_id"]
    polls_before = len([e for e in pipeline.mock.requests(method="GET") if e["task_id"] == task])
    assert run_ops(pipeline, tmp_path, "redrive", "--since", "1h", "--reason", "timeout", "--yes") == 0
    resumed = [e for e in pipeline.executions() if e["name"].startswith("resume-")]
    assert len(resumed) == 1
    ended = executions_ended(pipeline, key, 2)
    assert {json.loads(e["input"])["create"].get("task_id") for e in ended} == {None, task}
    assert len([e for e in posts_for(pipeline, "resumed.jpg") if e["status"] == 200]) == 1  # nothing paid again
    polls_after = len([e for e in pipeline.mock.requests(method="GET") if e["task_id"] == task])
    assert polls_after > polls_before  # the paid task was polled again
    assert only_record(pipeline, key)[1]["task_id"] == task
