"""Every upload ends in exactly one record of its own and nothing is paid twice: a create that dies at any point,
uploads that cannot be judged, oversized and hostile inputs, answers that only look done, keys at S3's limit,
polls that keep failing. The whole pipeline: template.yaml in moto, the real ASL, the mock in its own process."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import pytest
from botocore.exceptions import ClientError

from offline.lambdas import LambdaCrash
from offline.record_reader import read_records
from picwish_pipeline import tally
from picwish_pipeline.uploads import S3_KEY_MAX_BYTES
from picwish_visual.catalog import MB
from tests.support import images
from tests.support.journal import posts_for


def only_record(pipeline, key: str, timeout_s: float = 30) -> tuple[str, dict]:
    """The upload's one record: it names this upload, and no other record of it exists."""
    kind, record = pipeline.record(key, timeout_s=timeout_s)
    present = read_records(pipeline.s3, pipeline.stack.output_bucket, key)
    assert [k for k, _ in present] == [kind], present
    assert record["source"]["key"] == key
    return kind, record


def delivered_keys(event) -> list[str]:
    """The decoded object keys of an S3 notification (S3 sends them `quote_plus`-encoded)."""
    records = (event or {}).get("Records") if isinstance(event, dict) else None
    return [unquote_plus(r["s3"]["object"]["key"]) for r in records or []]


def submits_of(pipeline, key: str) -> list:
    return [i for i in pipeline.runtime.invocations if key in delivered_keys(i.event)]


def fault(pipeline, logical_id: str, key: str, hook) -> None:
    """`hook(point, params)` runs at each point of the function's invocations for the upload at `key` only."""

    def for_this_upload(point, event, params):
        upload = ((event or {}).get("job") or {}).get("upload") or {}
        if upload.get("key") == key or key in delivered_keys(event):
            hook(point, params)

    pipeline.runtime.faults[pipeline.stack.resources[logical_id]] = for_this_upload


# -- 1. files sharing a stem ------------------------------------------------------------------------------------


def test_files_sharing_a_stem_end_in_records_of_their_own(pipeline):
    png, jpg = "incoming/correction/x/me.png", "incoming/correction/x/me.jpg"
    pipeline.mock.add_rule(filename="me.png", state=-7)
    pipeline.upload(png, images.portrait(fmt="PNG"))
    assert only_record(pipeline, png)[0] == "failed"
    pipeline.upload(jpg, images.portrait())
    assert only_record(pipeline, jpg)[0] == "result"
    kind, record = only_record(pipeline, png)  # the other file's finalize left this failure record alone
    assert (kind, record["reason"]) == ("failed", "task failed")


# -- 2. a create that dies at any point pays at most once -------------------------------------------------------

TASK_WRITES = ("DynamoDB.PutItem", "DynamoDB.UpdateItem")


@pytest.mark.parametrize(
    ("point", "kind", "posts"),
    [
        ("before the POST", "failed", 0),
        ("between the answer and the record", "failed", 1),
        ("after the record", "result", 1),
    ],
)
def test_a_create_that_dies_at_any_point_pays_at_most_once(pipeline, point, kind, posts):
    filename = f"crash-{point.split()[0]}.jpg"
    key = f"incoming/idphoto/crash/{filename}"
    tasks_table, crashed = pipeline.stack.resources["TasksTable"], []

    def crash(at, params):
        if crashed:
            return
        writes_task = at.split(" ", 1)[-1] in TASK_WRITES and (params or {}).get("TableName") == tasks_table
        item = (params.get("Key") or params.get("Item") or {}) if writes_task else {}
        writes_task = writes_task and not item["execution"]["S"].startswith(tally.PREFIX)  # the claim, not a count
        sent = bool(posts_for(pipeline, filename)) if writes_task else None
        hit = {
            "before the POST": at.startswith("after ") and writes_task and not sent,  # the claim is written
            "between the answer and the record": at.startswith("before ") and writes_task and sent,
            "after the record": at == "after",
        }[point]
        if hit:
            crashed.append(at)
            raise LambdaCrash(f"the create function died {point}")

    fault(pipeline, "CreateFunction", key, crash)
    pipeline.upload(key, images.portrait())
    got, record = only_record(pipeline, key)
    assert crashed, f"the crash {point} never happened"
    assert len(posts_for(pipeline, filename)) == posts
    assert got == kind, record
    if kind == "failed":
        assert record["reason"] == "ambiguous create"
        assert record["claimed_at"] and record["claimed_at"] in record["message"]
        assert "not paid twice" in record["message"]


@pytest.mark.parametrize("after", ["image.png", "result.json"])
def test_a_finalize_that_dies_after_a_write_is_retried_and_writes_the_same_objects_once_more(pipeline, after):
    filename = f"refinal-{after.split('.')[0]}.jpg"
    key = f"incoming/idphoto/{filename}"
    written, crashed = [], []

    def crash(at, params):
        if at == "after S3.PutObject" and params["Key"].startswith("results/"):
            written.append(params["Key"])
            if not crashed and params["Key"].endswith(after):
                crashed.append(params["Key"])
                raise LambdaCrash(f"the finalize function died after writing {after}")

    fault(pipeline, "FinalizeFunction", key, crash)
    pipeline.upload(key, images.portrait(), {"format": "png"})
    pipeline.record(key)
    pipeline.execution_stats(pipeline.execution_for(key))  # waits for the execution to end: the retry included
    kind, record = only_record(pipeline, key)
    assert kind == "result" and crashed
    prefix = f"results/idphoto/{filename}/"
    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.stack.output_bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"{prefix}image.png", f"{prefix}result.json"]  # one set of keys
    # Each key written by both attempts, the same bytes under the same key: nothing beside them.
    assert sorted(written) == sorted(
        [f"{prefix}image.png"] * 2 + [f"{prefix}result.json"] * (2 if after == "result.json" else 1)
    )
    assert record["outputs"] == {"image": f"{prefix}image.png"}
    assert len(posts_for(pipeline, filename)) == 1


def test_a_task_record_that_cannot_be_written_does_not_stop_the_job(pipeline):
    key, tasks_table = "incoming/idphoto/unrecorded.jpg", pipeline.stack.resources["TasksTable"]

    def refuse(at, params):
        sent = posts_for(pipeline, "unrecorded.jpg")
        if at.startswith("before DynamoDB.") and (params or {}).get("TableName") == tasks_table and sent:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, at.split(".")[-1])

    fault(pipeline, "CreateFunction", key, refuse)
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert kind == "result", record
    assert len(posts_for(pipeline, "unrecorded.jpg")) == 1


# -- 3. and 4. judging an upload: any failure is recorded; size before bytes -----------------------------------


def test_rectangles_nested_too_deep_are_invalid_input(pipeline):
    key = "incoming/inpaint/deep.png"
    pipeline.upload(key, images.photo(80, 60, fmt="PNG"), {"rectangles": "[" * 1500})
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"], record["parameter"]) == ("failed", "invalid input", "rectangles")
    assert record["message"].startswith("rectangles: must be a JSON array")


def test_an_upload_that_cannot_be_read_ends_in_an_internal_error_record_and_goes_on_to_retries(pipeline):
    key = "incoming/idphoto/locked.jpg"

    def deny(at, params):  # the reads of the upload's version; the record's check of the key's newest goes through
        if at.startswith("before S3.") and (params or {}).get("Key") == key and (params or {}).get("VersionId"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected"}}, at.split(".")[-1])

    fault(pipeline, "SubmitFunction", key, deny)
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", "internal error")
    assert record["message"] == "the upload could not be judged (ClientError); it will be tried again"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        key in delivered_keys(i.event) for i in pipeline.runtime.async_failures
    ):
        time.sleep(0.05)
    failed = [i for i in pipeline.runtime.async_failures if key in delivered_keys(i.event)]
    assert failed and failed[0].error == "ClientError"  # not dropped: Lambda's retries, then the dead-letter queue


def test_an_oversized_upload_is_refused_without_reading_it(pipeline):
    key, reads = "incoming/idphoto/huge.jpg", []
    fault(pipeline, "SubmitFunction", key, lambda at, params: reads.append(at) if at == "before S3.GetObject" else None)
    body = images.portrait() + b"\0" * (20 * MB)
    pipeline.upload(key, body)
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"], record["parameter"]) == ("failed", "invalid input", "image_file")
    assert record["message"] == f"image_file: must be at most 20 MB ({20 * MB} bytes); got {len(body)} bytes"
    assert reads == []


def test_a_decompression_bomb_is_invalid_input(pipeline):
    key = "incoming/correction/bomb.png"
    pipeline.upload(key, images.bomb())
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"], record["parameter"]) == ("failed", "invalid input", "image_file")
    assert "DecompressionBomb" in record["message"]
    assert posts_for(pipeline, "bomb.png") == []


def test_folder_markers_are_ignored(pipeline):
    key = "incoming/idphoto/folder/"
    pipeline.upload(key, b"")
    deadline = time.monotonic() + 10
    while not submits_of(pipeline, key):
        assert time.monotonic() < deadline, "the folder marker's event never reached the submit function"
        time.sleep(0.05)
    submits = submits_of(pipeline, key)
    assert submits and json.loads(submits[0].result)["ignored"] == 1
    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.stack.output_bucket, Prefix="failed/idphoto/folder")
    assert listed.get("KeyCount", 0) == 0


# -- 5. "done" is the documented done -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"script": "0,1.0", "polls": 2}, "unknown state"),
        ({"result": "missing"}, "unexpected response"),
        ({"result": "empty"}, "unexpected response"),
    ],
)
def test_only_the_documented_done_is_a_result(pipeline, rule, reason):
    filename = f"done-{next(iter(rule.values())).replace(',', '')}.jpg"
    pipeline.mock.add_rule(filename=filename, **rule)
    key = f"incoming/idphoto/{filename}"
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", reason), record
    assert record["task_id"] and len(posts_for(pipeline, filename)) == 1


def test_a_clothing_task_done_without_any_mask_is_no_result(pipeline):
    key = "incoming/clothing-segmentation/nozip.jpg"
    pipeline.mock.add_rule(filename="nozip.jpg", result="missing")
    pipeline.upload(key, images.portrait(), {"output_type": "2"})
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", "unexpected response"), record


# -- 6. keys at S3's limit -----------------------------------------------------------------------------------------


def long_key(operation: str, total: int = S3_KEY_MAX_BYTES, ext: str = ".jpg") -> str:
    head = f"incoming/{operation}/" + "deep/" * 40
    room = total - len(head.encode()) - len(ext)
    return head + "ü" * (room // 2) + "x" * (room % 2) + ext


def test_a_key_at_s3s_limit_gets_its_result_within_it(pipeline):
    key = long_key("clothing-segmentation")
    assert len(key.encode()) == S3_KEY_MAX_BYTES
    pipeline.upload(key, images.portrait(), {"class_type": "4", "output_type": "3"})
    kind, record = only_record(pipeline, key)
    assert kind == "result", record
    assert len(record["outputs"]) > 5 and all(len(k.encode()) <= S3_KEY_MAX_BYTES for k in record["outputs"].values())


def test_a_key_at_s3s_limit_gets_its_failure_record_within_it(pipeline):
    key = long_key("idphoto")
    pipeline.upload(key, images.portrait(), {"size": "1x1"})
    kind, record = only_record(pipeline, key)
    assert (kind, record["parameter"]) == ("failed", "size")


# -- 7. polls that fail are waited out until the deadline ---------------------------------------------------------


def test_each_state_of_0_2_5_1_is_seen_by_a_poll_and_ends_in_one_finalize(pipeline):
    pipeline.mock.add_rule(filename="seq.jpg", script="0,2,5,1", polls=4)  # one state per poll, done at the 4th
    key = "incoming/idphoto/seq.jpg"
    pipeline.upload(key, images.portrait())
    kind, _ = only_record(pipeline, key)
    assert kind == "result"
    name = pipeline.execution_for(key)
    arn = f"{pipeline.stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    events = pipeline.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    outputs = [
        json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
        for e in events
        if e["type"] == "LambdaFunctionSucceeded"
    ]
    seen = {o["polls"]: o["state"] for o in outputs if "phase" in o}  # the poll step's answers, by poll
    assert [seen[n] for n in sorted(seen)] == [0, 2, 5, 1], outputs
    finalizes = [
        i
        for i in pipeline.runtime.invocations
        if (i.event or {}).get("execution") == name and "FinalizeFunction" in i.function_name
    ]
    assert len(finalizes) == 1


def test_a_run_of_failing_polls_is_waited_out(pipeline):
    pipeline.mock.add_rule(filename="flaky8.jpg", query_status=500, query_status_count=8)
    key = "incoming/idphoto/flaky8.jpg"
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key, timeout_s=60)
    assert kind == "result", record
    assert record["polls"] >= 9


@pytest.mark.parametrize("fault", ["reset", "not-json"])
def test_polls_answered_by_a_reset_or_a_page_that_is_not_json_are_waited_out(pipeline, fault):
    name = f"odd-{fault}.jpg"
    pipeline.mock.add_rule(filename=name, query_fault=fault, query_status_count=3)
    key = f"incoming/idphoto/{name}"
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key, timeout_s=60)
    assert kind == "result", record
    polls = [e for e in pipeline.mock.requests(method="GET") if e["task_id"] == record["task_id"]]
    assert len(polls) == record["polls"] >= 4  # three odd answers, then the one that saw it done
    assert len(posts_for(pipeline, name)) == 1  # the task is paid once; only polls are repeated


def test_polls_that_fail_until_the_deadline_end_in_a_timeout_naming_the_failure(pipeline):
    pipeline.mock.add_rule(filename="down.jpg", query_status=500, query_status_count=10_000)
    key = "incoming/correction/down.jpg"  # correction's deadline is 2 s here
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"], record["status"]) == ("failed", "timeout", 500), record
    assert "before the 2 s deadline" in record["message"]


# -- reliability matrix: rows 4, 6, 12, 15, 20, 23 ----------------------------------------------------------------


def test_persistent_429_ends_in_a_rate_limited_record(pipeline):
    pipeline.mock.add_rule(filename="busy-forever.jpg", query_status=429, query_status_count=10_000)
    key = "incoming/idphoto/busy-forever.jpg"
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key, timeout_s=60)
    assert (kind, record["reason"], record["status"]) == ("failed", "rate limited", 429), record
    assert record["api_calls"] == 1 + 4  # the create, then three 429s waited out and the fourth ends it


def test_a_redelivery_long_after_the_job_ended_pays_nothing(pipeline):
    key = "incoming/idphoto/late-again.jpg"
    pipeline.upload(key, images.portrait())
    assert only_record(pipeline, key)[0] == "result"
    name = pipeline.execution_for(key)
    pipeline.execution_stats(name)  # waits until the execution has closed
    delivered = submits_of(pipeline, key)[0].event
    again = pipeline.invoke("SubmitFunction", delivered)
    assert again["duplicate"] == 1 and again["started"] == 0
    assert len(posts_for(pipeline, "late-again.jpg")) == 1


def test_a_poll_that_dies_after_its_call_is_retried_and_the_job_proceeds(pipeline):
    key, died = "incoming/idphoto/poll-timeout.jpg", []

    def time_out_once(at, _params):
        if at == "after" and not died:
            died.append(at)
            raise LambdaCrash("Task timed out after 60.00 seconds")

    fault(pipeline, "PollFunction", key, time_out_once)
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert died and kind == "result", record
    assert len(posts_for(pipeline, "poll-timeout.jpg")) == 1


def test_a_success_is_finalized_exactly_once(pipeline):
    key = "incoming/retouching-collection/once.png"
    pipeline.upload("masks/retouching-collection/once.png", images.mask(80, 60))
    pipeline.upload(key, images.photo(80, 60, fmt="PNG"))
    assert only_record(pipeline, key)[0] == "result"
    name = pipeline.execution_for(key)
    pipeline.execution_stats(name)
    finalize = pipeline.stack.resources["FinalizeFunction"]
    runs = [i for i in pipeline.runtime.invocations if i.function_name == finalize and i.event.get("execution") == name]
    assert len(runs) == 1 and runs[0].error is None


def test_history_of_the_longest_job_stays_far_under_the_25000_event_limit(pipeline):
    pipeline.mock.add_rule(filename="forever.jpg", script="0,2,4", polls=3)
    key = "incoming/correction/forever.jpg"  # polled until its 2 s deadline at 5 QPS
    pipeline.upload(key, images.portrait())
    kind, record = only_record(pipeline, key)
    assert (kind, record["reason"]) == ("failed", "timeout")
    name = pipeline.execution_for(key)
    pipeline.execution_stats(name)
    arn = f"{pipeline.stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    events = pipeline.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    polls = record["api_calls"] - 1
    per_poll = len(events) / polls
    # Every call takes a QPS slot, so one job makes at most deadline × QPS polls: 240 s × 2 with the defaults.
    worst = per_poll * 240 * 2 + len(events)
    assert polls >= 3 and worst < 25_000 / 2, (len(events), polls)


def test_the_largest_state_payload_stays_far_under_256_kib(pipeline):
    rectangles = [{"x": i, "y": i, "width": 1, "height": 1} for i in range(50)]  # the most the API takes
    key = long_key("inpaint", ext=".png")
    metadata = {"rectangles": json.dumps(rectangles, separators=(",", ":"))}
    pipeline.upload(key, images.photo(80, 60, fmt="PNG"), metadata)
    assert only_record(pipeline, key)[0] == "result"
    clothing = long_key("clothing-segmentation")
    pipeline.upload(clothing, images.portrait(), {"class_type": "4", "output_type": "3"})
    assert only_record(pipeline, clothing)[0] == "result"
    sizes = []
    for upload in (key, clothing):
        name = pipeline.execution_for(upload)
        pipeline.execution_stats(name)
        arn = f"{pipeline.stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
        for event in pipeline.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]:
            for details in event.values():
                if isinstance(details, dict):
                    sizes += [len(str(v).encode()) for k, v in details.items() if k in ("input", "output")]
    # Measured: about 38 KB at most (clothing's 20 outputs, each under a key of about 1 KB, in the last state).
    assert sizes and max(sizes) < 256 * 1024 / 4, max(sizes)
