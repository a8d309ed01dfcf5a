"""picwish-ops finds a job's records where the pipeline writes them, long keys included (not by re-deriving the
layout), and by the exact key."""

import io
import json
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from ops import redrive
from ops.target import Target
from picwish_pipeline.uploads import parse_job_path

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TARGET = Target(input_bucket="in", output_bucket="out", state_machine_arn="arn:sm", region="us-east-1")


class ListingS3:
    def __init__(self, keys: set[str]) -> None:
        self.keys = keys

    def head_object(self, Bucket: str, Key: str) -> dict:
        if Key not in self.keys:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {}


def test_redrive_sees_the_result_of_an_upload_whose_key_the_output_keys_shorten():
    key = "incoming/idphoto/" + "a-very-long-folder-name/" * 45 + "me.jpg"
    path = parse_job_path(key)
    assert path is not None and path.result_key != f"results/{key.removeprefix('incoming/')}/result.json"
    s3 = ListingS3({path.result_key})
    assert redrive._has_result(TARGET, s3, key)  # else a paid upload would be run (and paid) again
    assert not redrive._has_result(TARGET, ListingS3(set()), key)


def test_redrive_judges_a_result_by_the_exact_key_not_a_prefix_another_key_extends():
    failed, longer = "incoming/idphoto/pfx.jpg", "incoming/idphoto/pfx.jpg/result.json.jpg"
    s3 = ListingS3({parse_job_path(longer).result_key})
    assert not redrive._has_result(TARGET, s3, failed)


class FailureBucket:
    """An output bucket of `n` failure records ("task failed"), listed 1,000 keys a page as S3 lists them."""

    def __init__(self, n: int) -> None:
        self.keys = [f"failed/idphoto/f{i:05}.jpg.json" for i in range(n)]

    def get_paginator(self, name: str):
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str):
        listed = [k for k in self.keys if k.startswith(Prefix)]
        for first in range(0, len(listed), 1000):
            yield {"Contents": [{"Key": k, "LastModified": NOW} for k in listed[first : first + 1000]]}

    def get_object(self, Bucket: str, Key: str) -> dict:
        upload = "incoming/" + Key.removeprefix("failed/").removesuffix(".json")
        record = {"outcome": "failed", "reason": "task failed", "source": {"key": upload}, "recorded_at": "x"}
        return {"Body": io.BytesIO(json.dumps(record).encode())}

    def head_object(self, Bucket: str, Key: str) -> dict:
        if Bucket == TARGET.output_bucket:  # no result
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {}  # the upload, unversioned


def test_a_long_redrive_plan_tells_its_progress_every_500_records():
    heard: list[str] = []
    found = redrive.plan(TARGET, FailureBucket(1_200), NOW - timedelta(hours=1), now=NOW, progress=heard.append)
    assert len(found) == 1_200 and {c.decision for c in found} == {"redrive"}
    assert heard == ["500 failure records read", "1000 failure records read"]
