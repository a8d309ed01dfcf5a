"""A Distributed Map's S3 listing on the local stack (offline.moto_map): every page of it, as AWS reads it, and an
empty prefix as a map of no items."""

import json
import time

import boto3
import pytest
from moto import mock_aws

from offline.moto_map import read_whole_listings
from offline.moto_speed import speed_up_moto

MACHINE = {
    "StartAt": "Listed",
    "States": {
        "Listed": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:listObjectsV2",
                "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
            },
            "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "modified.$": "$$.Map.Item.Value.LastModified"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Seen",
                "States": {"Seen": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}


@pytest.fixture
def aws():
    speed_up_moto()
    read_whole_listings()  # without it: 1,000 keys, and a KeyError on the empty prefix
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="catalog")
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="listing", definition=json.dumps(MACHINE), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        yield s3, sfn, arn


def _run(sfn, arn, prefix: str) -> dict:
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"bucket": "catalog", "prefix": prefix}))
    deadline = time.monotonic() + 120
    while (done := sfn.describe_execution(executionArn=started["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return done


def test_a_map_over_more_than_one_page_of_keys_sees_every_key(aws):
    s3, sfn, arn = aws
    keys = [f"incoming/idphoto/{i:04}.jpg" for i in range(1_050)]
    for key in keys:
        s3.put_object(Bucket="catalog", Key=key, Body=b"x")
    done = _run(sfn, arn, "incoming/")
    assert done["status"] == "SUCCEEDED", done
    items = json.loads(done["output"])
    assert sorted(item["key"] for item in items) == keys
    assert all(isinstance(item["modified"], str) for item in items)  # ISO 8601, as AWS hands them over


def test_a_map_over_an_empty_prefix_has_no_items(aws):
    _s3, sfn, arn = aws
    done = _run(sfn, arn, "incoming/none/")
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", [])
