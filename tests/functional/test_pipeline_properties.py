"""Property tests on the whole pipeline: whatever the API reports, every upload ends in exactly one record, and
paid tasks never exceed unique uploads."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offline.harness import build
from offline.record_reader import read_records
from tests.support import images

PROCESSING = st.sampled_from([0, 2, 3, 4, 5, 6])
ENDINGS = st.sampled_from([1, 1, 1, -1, -3, -5, -7, -8, -9, -17, 7, -18, "null", "missing", '"1"'])
counter = itertools.count()


@pytest.fixture(scope="module")
def pipeline():
    built, stack = build(("--qps", "0", "--time-scale", "0.01"), {"ApiQps": "20", "WaitScale": "0.01"})
    with stack:
        yield built


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(middle=st.lists(PROCESSING, max_size=4), ending=ENDINGS)
def test_any_state_sequence_ends_in_exactly_one_record(pipeline, middle, ending):
    name = f"prop{next(counter)}.jpg"
    script = ",".join(str(s) for s in [0, *middle, ending])
    pipeline.mock.add_rule(filename=name, script=script, polls=len(middle) + 2)
    key = f"incoming/idphoto/props/{name}"
    pipeline.upload(key, images.portrait())
    kind, record = pipeline.record(key, timeout_s=60)
    present = read_records(pipeline.s3, pipeline.stack.output_bucket, key)
    assert len(present) == 1, present
    assert (kind == "result") == (ending == 1), (script, record)
    creates = [e for e in pipeline.mock.requests(method="POST") if e["fields"]["image_file"]["filename"] == name]
    assert len(creates) == 1


def test_paid_tasks_never_exceed_unique_uploads(pipeline):
    pipeline.runtime.s3_delivery_copies = 2  # every delivery twice, and every file uploaded twice
    try:
        keys = [f"incoming/idphoto/paid/{i}.jpg" for i in range(4)]
        for key in keys:
            pipeline.upload(key, images.portrait())
            pipeline.upload(key, images.portrait())  # same bytes again: a new job only if S3 says so
        for key in keys:
            pipeline.record(key)
        pipeline.runtime.wait_idle()
    finally:
        pipeline.runtime.s3_delivery_copies = 1
    executions = pipeline.executions()
    uploads = {
        json.loads(pipeline.sfn.describe_execution(executionArn=e["executionArn"])["input"])["job"]["upload"]["key"]
        for e in executions
    }
    assert set(keys) <= uploads
    # Each upload is a version of its key; every event came twice. At most one task per version, and the
    # newest version of each key was paid for (its record is a result).
    versions = pipeline.s3.list_object_versions(Bucket=pipeline.stack.input_bucket, Prefix="incoming/idphoto/paid/")
    unique_uploads = len(versions["Versions"])
    names = {key.rsplit("/", 1)[1] for key in keys}
    paid = [
        e
        for e in pipeline.mock.requests(method="POST")
        if e["status"] == 200 and e["fields"]["image_file"]["filename"] in names
    ]
    assert unique_uploads == 2 * len(keys)
    assert len(keys) <= len(paid) <= unique_uploads
    names = [e["name"] for e in executions]
    assert len(names) == len(set(names))
