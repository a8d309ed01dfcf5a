"""The pipeline end to end in one process: template.yaml in moto, the ASL run by moto's interpreter, the real
handlers in-process, the mock API in its own process. Every upload must end in exactly one record."""

from __future__ import annotations

import io
import json
import time
import zipfile

import boto3
import pytest
from PIL import Image

from offline.lambdas import LambdaCrash
from picwish_visual.states import TASK_STATES
from tests.support import images
from tests.support.journal import posts_for


def polls_for(pipeline, task_id):
    return pipeline.mock.requests(method="GET", task_id=task_id)


def slots_of(pipeline, calls):
    """The QPS slot each call went out in: the slot whose announced send time is nearest its arrival."""
    table = pipeline.stack.resources["RateLimitTable"]
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    sent = [(float(i["called_at"]["N"]), int(i["sk"]["N"])) for i in items if "called_at" in i]
    return [min(sent, key=lambda s: abs(s[0] - call["time"]))[1] for call in calls]


# -- every operation succeeds ----------------------------------------------------------------------------------


def test_idphoto_with_metadata_options(pipeline):
    key = "incoming/idphoto/people/me 1+(a)ü.jpg"
    pipeline.upload(key, images.portrait(120, 90), {"size": "150x200", "format": "jpg", "bg-color": "3366CC"})
    kind, record = pipeline.record(key)
    assert kind == "result", record
    assert record["options"] == {"size": "150x200", "format": "jpg", "bg_color": "3366CC"}
    assert record["outputs"] == {"image": "results/idphoto/people/me 1+(a)ü.jpg/image.jpg"}
    image = Image.open(io.BytesIO(pipeline.output(record["outputs"]["image"])))
    assert (image.format, image.size) == ("JPEG", (150, 200))
    assert record["source"]["key"] == key and record["credits"] == 1
    sent = posts_for(pipeline, "me 1+(a)ü.jpg")
    assert len(sent) == 1 and sent[0]["fields"]["sync"] == 0 and sent[0]["fields"]["size"] == "150x200"
    assert record["api_calls"] == 1 + record["polls"]


def test_inpaint_with_mask_uploaded_first(pipeline):
    pipeline.upload("masks/inpaint/shop/shoe.png", images.mask(80, 60, box=(10, 10, 29, 29)))
    key = "incoming/inpaint/shop/shoe.png"
    source = images.photo(80, 60, fmt="PNG")
    pipeline.upload(key, source)
    kind, record = pipeline.record(key)
    assert kind == "result", record
    out = Image.open(io.BytesIO(pipeline.output(record["outputs"]["image"]))).convert("RGB")
    src = Image.open(io.BytesIO(source)).convert("RGB")
    changed = {(x, y) for x in range(80) for y in range(60) if out.getpixel((x, y)) != src.getpixel((x, y))}
    assert changed and all(10 <= x <= 29 and 10 <= y <= 29 for x, y in changed)
    fields = posts_for(pipeline, "shoe.png")[0]["fields"]
    assert fields["mask_file"]["filename"] == "shoe.png"


def test_inpaint_with_rectangles_metadata(pipeline):
    key = "incoming/inpaint/rect.png"
    pipeline.upload(key, images.photo(80, 60, fmt="PNG"), {"rectangles": '[{"x":0,"y":0,"width":8,"height":8}]'})
    kind, record = pipeline.record(key)
    assert kind == "result" and record["options"]["rectangles"] == [{"x": 0, "y": 0, "width": 8, "height": 8}]


def test_retouching_with_retain_mask(pipeline):
    pipeline.upload("masks/retouching-collection/bag.png", images.mask(80, 60))
    pipeline.upload("masks/retouching-collection/bag.retain.png", images.mask(80, 60, box=(0, 0, 9, 9)))
    key = "incoming/retouching-collection/bag.png"
    pipeline.upload(key, images.photo(80, 60, fmt="PNG"), {"retouch_strength": "80", "type": "6"})
    kind, record = pipeline.record(key)
    assert kind == "result", record
    fields = posts_for(pipeline, "bag.png")[0]["fields"]
    assert fields["retain_mask_file"]["filename"] == "bag.retain.png" and fields["type"] == 6


def test_correction_background_removal(pipeline):
    key = "incoming/correction/doc.jpg"
    pipeline.upload(key, images.portrait(), {"type": "4"})
    kind, record = pipeline.record(key)
    assert kind == "result", record
    assert Image.open(io.BytesIO(pipeline.output(record["outputs"]["image"]))).mode == "RGBA"
    assert record["credits"] == 3


def test_clothing_masks_and_zip(pipeline):
    key = "incoming/clothing-segmentation/look.jpg"
    pipeline.upload(key, images.portrait(), {"class_type": "3", "output_type": "3"})
    kind, record = pipeline.record(key)
    assert kind == "result", record
    assert set(record["outputs"]) == {"hair", "face", "head", "body", "clothes_masks"}
    assert record["outputs"]["hair"] == "results/clothing-segmentation/look.jpg/hair.png"
    assert zipfile.ZipFile(io.BytesIO(pipeline.output(record["outputs"]["clothes_masks"]))).namelist()


# -- bad input: a record before any paid call ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "body", "metadata", "parameter", "message"),
    [
        ("incoming/idphoto/badsize.jpg", images.portrait(), {"size": "300X400"}, "size", "size: must be {width}x"),
        ("incoming/idphoto/corrupt.jpg", images.corrupt_jpeg(), {}, "image_file", "image_file: must be an image"),
        ("incoming/idphoto/empty.jpg", b"", {}, "image_file", "image_file: must not be empty"),
        (
            "incoming/correction/huge.png",
            images.encode(Image.new("1", (4097, 8)), "PNG"),
            {},
            "image_file",
            "image_file: must be at most 4096x4096",
        ),
        ("incoming/inpaint/nomask.png", images.photo(fmt="PNG"), {}, "mask_file", "mask_file: one of mask_url"),
        ("incoming/resize/any.jpg", images.portrait(), {}, "operation", "operation: must be one of"),
    ],
)
def test_bad_input_gets_a_failure_record_and_costs_nothing(pipeline, key, body, metadata, parameter, message):
    pipeline.upload(key, body, metadata)
    kind, record = pipeline.record(key)
    assert kind == "failed"
    assert record["parameter"] == parameter and record["message"].startswith(message)
    assert posts_for(pipeline, key.rsplit("/", 1)[1]) == []
    assert "Traceback" not in json.dumps(record)


def test_mismatched_mask(pipeline):
    pipeline.upload("masks/inpaint/mm.png", images.mask(40, 60))
    pipeline.upload("incoming/inpaint/mm.png", images.photo(80, 60, fmt="PNG"))
    kind, record = pipeline.record("incoming/inpaint/mm.png")
    assert kind == "failed" and record["message"].startswith("mask_file: must have the same dimensions")
    assert posts_for(pipeline, "mm.png") == []  # refused before anything was sent


# -- the API's failures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [-1, -3, -5, -7, -8, -9, -17])
def test_failed_state_ends_in_its_record_without_more_polls(pipeline, state):
    filename = f"fail{state}.jpg"
    pipeline.mock.add_rule(filename=filename, state=state)
    pipeline.upload(f"incoming/idphoto/{filename}", images.portrait())
    kind, record = pipeline.record(f"incoming/idphoto/{filename}")
    assert kind == "failed" and record["reason"] == "task failed"
    assert (record["state"], record["meaning"]) == (state, TASK_STATES[state])
    assert len(posts_for(pipeline, filename)) == 1
    assert len(polls_for(pipeline, record["task_id"])) == record["api_calls"] - 1


@pytest.mark.parametrize("script", ["0,2,7", "0,null", "0,2,missing", '0,"1"', "0,-18"])
def test_unknown_state_is_a_record_not_a_loop(pipeline, script):
    filename = f"unknown{abs(hash(script))}.jpg"
    pipeline.mock.add_rule(filename=filename, script=script, polls=2)
    pipeline.upload(f"incoming/idphoto/{filename}", images.portrait())
    kind, record = pipeline.record(f"incoming/idphoto/{filename}")
    assert kind == "failed" and record["reason"] == "unknown state", record


def test_processing_past_the_deadline_is_a_timeout(pipeline):
    pipeline.mock.add_rule(filename="slow.jpg", script="0,2,4", polls=3)  # then stays in 4
    pipeline.upload("incoming/correction/slow.jpg", images.portrait())
    kind, record = pipeline.record("incoming/correction/slow.jpg", timeout_s=30)
    assert kind == "failed" and record["reason"] == "timeout" and record["state"] == 4


def test_429_on_polls_is_waited_out(pipeline):
    pipeline.mock.add_rule(filename="busy.jpg", query_status=429, query_status_count=3)
    pipeline.upload("incoming/idphoto/busy.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/busy.jpg", timeout_s=30)
    assert kind == "result" and record["throttled"] == 3


def test_429_in_an_http_200_body_on_create_is_waited_out(pipeline):
    pipeline.mock.add_rule(filename="busy200.jpg", create_status=429, status_in_body=True, times=2)
    pipeline.upload("incoming/idphoto/busy200.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/busy200.jpg", timeout_s=30)
    assert kind == "result", record
    assert [e["status"] for e in posts_for(pipeline, "busy200.jpg")] == [429, 429, 200]


def test_create_500_is_ambiguous_and_not_repaid(pipeline):
    pipeline.mock.add_rule(filename="boom.jpg", create_status=500)
    pipeline.upload("incoming/idphoto/boom.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/boom.jpg")
    assert kind == "failed" and record["reason"] == "ambiguous create" and record["status"] == 500
    assert len(posts_for(pipeline, "boom.jpg")) == 1


def test_expired_result_link(pipeline):
    pipeline.mock.add_rule(filename="late.jpg", result_ttl=0)
    pipeline.upload("incoming/idphoto/late.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/late.jpg")
    assert kind == "failed" and record["reason"] == "result expired" and record["status"] == 403
    assert len(posts_for(pipeline, "late.jpg")) == 1  # no silent paid resubmit


# -- duplicates and crashes: one paid create -------------------------------------------------------------------


def test_duplicate_s3_deliveries_start_one_job(pipeline):
    pipeline.runtime.s3_delivery_copies = 2
    pipeline.upload("incoming/idphoto/twice.jpg", images.portrait())
    kind, _ = pipeline.record("incoming/idphoto/twice.jpg")
    pipeline.runtime.wait_idle()
    assert kind == "result"
    assert len(posts_for(pipeline, "twice.jpg")) == 1
    names = [e["name"] for e in pipeline.executions() if e["name"].startswith("idphoto-")]
    assert len(names) == len(set(names))


def test_reupload_is_processed_again_and_replaces_the_failure(pipeline):
    key = "incoming/idphoto/again.jpg"
    pipeline.mock.add_rule(filename="again.jpg", state=-7, times=1)
    pipeline.upload(key, images.portrait())
    assert pipeline.record(key)[0] == "failed"
    pipeline.upload(key, images.portrait(100, 80))
    # The old record stays until the new job's result replaces it.
    kind, _ = pipeline.record(key, timeout_s=30, wanted="result")
    assert kind == "result" and len(posts_for(pipeline, "again.jpg")) == 2
    with pytest.raises(pipeline.s3.exceptions.NoSuchKey):
        pipeline.output("failed/idphoto/again.jpg.json")


def test_crash_after_the_api_accepted_does_not_pay_twice(pipeline):
    create_fn = pipeline.stack.resources["CreateFunction"]
    crashed = []

    def crash_once(phase, event, _params=None):
        if phase == "after" and not crashed:
            crashed.append(event)
            raise LambdaCrash("the function died after the task was created")

    pipeline.runtime.faults[create_fn] = crash_once
    pipeline.upload("incoming/idphoto/crash.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/crash.jpg", timeout_s=30)
    assert crashed and kind == "result", record
    assert len(posts_for(pipeline, "crash.jpg")) == 1


# -- the API key ------------------------------------------------------------------------------------------------


def test_401_refetches_the_secret_once_then_proceeds(pipeline):
    pipeline.mock.add_rule(filename="rotated.jpg", create_status=401, times=1)
    pipeline.upload("incoming/idphoto/rotated.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/rotated.jpg")
    assert kind == "result", record
    posts = posts_for(pipeline, "rotated.jpg")
    assert [e["status"] for e in posts] == [401, 200]
    # The second attempt takes a QPS slot of its own, not the budget of the next call. (Not "0.21 s later", the
    # spacing at 5 QPS: a first call sent late in its slot, by a sandbox starting cold, is closer to the next.)
    first, second = slots_of(pipeline, posts)
    assert second > first


def test_poll_401_rereads_the_key_and_polls_again_in_a_slot_of_its_own(pipeline):
    pipeline.mock.add_rule(filename="rotated-poll.jpg", query_status=401, query_status_count=1)
    pipeline.upload("incoming/idphoto/rotated-poll.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/rotated-poll.jpg")
    assert kind == "result", record
    polls = polls_for(pipeline, record["task_id"])
    assert [e["status"] for e in polls] == [401, 200]
    first, second = slots_of(pipeline, polls)
    assert second > first


def test_persistent_401_fails_with_a_clear_record(pipeline):
    pipeline.mock.add_rule(filename="revoked.jpg", create_status=401)
    pipeline.upload("incoming/idphoto/revoked.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/revoked.jpg")
    assert kind == "failed" and record["reason"] == "unauthorized" and record["status"] == 401
    assert len(posts_for(pipeline, "revoked.jpg")) == 2  # one retry with a fresh secret, no storm


def test_api_key_never_reaches_logs_records_or_results(pipeline, capfd):
    # A plain job, a create answered 401 (the key read again, then a failure), polls answered 401 (waited out),
    # and a task that fails: the key is in none of the logs, histories, tables or objects they leave.
    pipeline.mock.add_rule(filename="leak-401.jpg", create_status=401)
    pipeline.mock.add_rule(filename="leak-poll-401.jpg", query_status=401, query_status_count=2)
    pipeline.mock.add_rule(filename="leak-failed.jpg", state=-7)
    names = ("leak.jpg", "leak-401.jpg", "leak-poll-401.jpg", "leak-failed.jpg")
    for name in names:
        pipeline.upload(f"incoming/idphoto/{name}", images.portrait())
    for name in names:
        pipeline.record(f"incoming/idphoto/{name}")
    key = pipeline.mock.api_key
    pipeline.runtime.wait_idle()  # every invocation has returned; its lines may still be on their way
    out = err = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(name in out for name in names):
        chunk = capfd.readouterr()
        out, err = out + chunk.out, err + chunk.err
        time.sleep(0.1)
    time.sleep(0.5)  # and whatever the forwarding threads had left
    chunk = capfd.readouterr()
    out, err = out + chunk.out, err + chunk.err
    assert all(name in out for name in names)  # every job's logs were read
    assert key not in out and key not in err
    for bucket in (pipeline.stack.input_bucket, pipeline.stack.output_bucket):
        listed = pipeline.s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert listed and all(
            key.encode() not in pipeline.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed
        )
    dynamodb = boto3.client("dynamodb")
    for table in ("TasksTable", "RateLimitTable"):
        items = dynamodb.scan(TableName=pipeline.stack.resources[table])["Items"]
        assert items and key not in json.dumps(items)
    for execution in pipeline.executions():  # inputs, outputs and error causes
        history = pipeline.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
        assert key not in json.dumps(history["events"], default=str)


def test_poll_5xx_is_retried_by_the_state_machine(pipeline):
    pipeline.mock.add_rule(filename="flaky.jpg", query_status=500, query_status_count=1)
    pipeline.upload("incoming/idphoto/flaky.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/flaky.jpg", timeout_s=60)
    assert kind == "result", record
    statuses = [e["status"] for e in polls_for(pipeline, record["task_id"])]
    assert statuses[0] == 500 and statuses[-1] == 200


def test_places_held_by_dead_executions_only_delay_a_create(pipeline):
    from picwish_pipeline.scheduler.slot_table import SlotLimiter

    limiter = SlotLimiter(pipeline.stack.resources["RateLimitTable"], 5, boto3.client("dynamodb"))
    for _ in range(15):
        limiter.reserve_create(2)  # executions that took a place and died before their call
    pipeline.upload("incoming/idphoto/after-ghosts.jpg", images.portrait())
    kind, record = pipeline.record("incoming/idphoto/after-ghosts.jpg", timeout_s=60)
    assert kind == "result", record
