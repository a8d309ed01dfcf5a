"""Uploads into the running local stack from outside it; results and failure records checked down to the bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from offline import record_reader
from offline.samples import demo_set
from tests.support import images


def wait_record(s3, info, key, timeout_s=60):
    return record_reader.wait_record(s3, info["output_bucket"], key, timeout_s=timeout_s)


def test_stack_json_names_everything_a_client_needs(local_stack):
    assert {"endpoint_url", "region", "input_bucket", "output_bucket", "mock_url", "api_key"} <= set(local_stack)
    assert local_stack["endpoint_url"].startswith("http://127.0.0.1:")


def test_a_plain_upload_yields_results_under_its_name(s3, local_stack):
    s3.put_object(Bucket=local_stack["input_bucket"], Key="incoming/idphoto/photo.jpg", Body=images.portrait())
    kind, record = wait_record(s3, local_stack, "incoming/idphoto/photo.jpg")
    assert kind == "result"
    listed = s3.list_objects_v2(Bucket=local_stack["output_bucket"], Prefix="results/idphoto/photo.jpg/")["Contents"]
    assert {o["Key"] for o in listed} == {
        "results/idphoto/photo.jpg/image.png",
        "results/idphoto/photo.jpg/result.json",
    }
    image = Image.open(
        io.BytesIO(s3.get_object(Bucket=local_stack["output_bucket"], Key=record["outputs"]["image"])["Body"].read())
    )
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (80, 60))


def test_images_go_to_the_api_as_presigned_urls(s3, local_stack, mock):
    s3.put_object(Bucket=local_stack["input_bucket"], Key="incoming/correction/url.jpg", Body=images.portrait())
    kind, record = wait_record(s3, local_stack, "incoming/correction/url.jpg")
    assert kind == "result"
    sent = next(e for e in mock.requests(method="POST") if e["task_id"] == record["task_id"])["fields"]
    assert sent["image_url"].startswith(local_stack["endpoint_url"]) and "X-Amz-Signature" in sent["image_url"]


@pytest.mark.parametrize("key", ["incoming/idphoto/dots/./here.jpg", "incoming/idphoto/dots/../up.jpg"])
def test_a_key_with_dot_segments_goes_as_a_file_and_ends_in_its_result(s3, local_stack, mock, key):
    # A fetcher removes `.` and `..` segments from a URL before asking for it: a presigned URL of such a key would
    # be fetched at another path than was signed.
    s3.put_object(Bucket=local_stack["input_bucket"], Key=key, Body=images.portrait())
    kind, record = wait_record(s3, local_stack, key)
    assert kind == "result", record
    sent = next(e for e in mock.requests(method="POST") if e["task_id"] == record["task_id"])["fields"]
    assert "image_url" not in sent and sent["image_file"]["filename"] == key.rsplit("/", 1)[1]


def test_an_image_whose_presigned_url_would_be_too_long_goes_as_a_file(s3, local_stack, mock):
    head = "incoming/idphoto/" + "long/" * 60
    key = head + "n" * (1000 - len(head) - 4) + ".jpg"  # its presigned URL is far over the API's 512 characters
    s3.put_object(Bucket=local_stack["input_bucket"], Key=key, Body=images.portrait())
    kind, record = wait_record(s3, local_stack, key)
    assert kind == "result", record
    sent = next(e for e in mock.requests(method="POST") if e["task_id"] == record["task_id"])["fields"]
    assert "image_url" not in sent and sent["image_file"]["filename"] == key.rsplit("/", 1)[1]


@pytest.mark.parametrize("sample", [s for s in demo_set() if s.rule is None], ids=lambda s: s.key)
def test_demo_samples_end_as_expected(s3, local_stack, sample):
    for key, body in sample.extra.items():
        s3.put_object(Bucket=local_stack["input_bucket"], Key=key, Body=body)
    s3.put_object(Bucket=local_stack["input_bucket"], Key=sample.key, Body=sample.body, Metadata=sample.metadata)
    kind, record = wait_record(s3, local_stack, sample.key, timeout_s=90)
    outcome = kind if kind == "result" else f"failed:{record['reason']}"
    assert outcome == sample.expect, record
    if kind == "result":
        for key in record["outputs"].values():
            body = s3.get_object(Bucket=local_stack["output_bucket"], Key=key)["Body"].read()
            assert body and (key.endswith(".zip") or Image.open(io.BytesIO(body)).size)
    if "size" in sample.metadata and kind == "result":
        width, height = map(int, sample.metadata["size"].split("x"))
        body = s3.get_object(Bucket=local_stack["output_bucket"], Key=record["outputs"]["image"])["Body"].read()
        assert Image.open(io.BytesIO(body)).size == (width, height)


def test_nothing_lost_in_a_burst_and_one_paid_task_each(s3, local_stack, mock):
    """Every S3 event of this stack is delivered twice, so this also proves duplicates are ignored."""
    keys = [f"incoming/idphoto/burst/{i:02d}.jpg" for i in range(12)]
    for key in keys:
        s3.put_object(Bucket=local_stack["input_bucket"], Key=key, Body=images.portrait())
    outcomes = [wait_record(s3, local_stack, key, timeout_s=120)[0] for key in keys]
    assert outcomes == ["result"] * len(keys)
    posts = [e for e in mock.requests(method="POST") if "/burst/" in str(e.get("fields", {}).get("image_url", ""))]
    assert len(posts) == len(keys)
    assert all(e["status"] == 200 for e in posts)
