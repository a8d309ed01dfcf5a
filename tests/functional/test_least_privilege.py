"""No statement grants a whole bucket or every resource, and the local stack enforces the policies: a permission
taken out of template.yaml fails the pipeline with AccessDenied. That each role is granted exactly what its code
uses is proven by running it (`test_least_privilege_by_execution.py`)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from offline.harness import build
from offline.stack import load_template, package, translate
from tests.support import images

# What Lambda itself does with a function's role, not the function's code: its dead-letter queue and logs.
# X-Ray takes no resource-level permissions: its statement's "*" is the one it accepts (see test_template).
SERVICE_USE = {"DeadLetterQueuePolicy", "LambdaTraces"}


@pytest.fixture(scope="module")
def translated():
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="picwish-offline-artifacts")
        return translate(package(load_template(), s3), {"ApiBaseUrl": "https://api.example"})


def granted_statements(translated, function_id):
    role = translated["Resources"][f"{function_id}Role"]["Properties"]
    for policy in role.get("Policies", []):
        if policy["PolicyName"] not in SERVICE_USE:
            yield from policy["PolicyDocument"]["Statement"]


def test_no_statement_grants_a_whole_bucket_or_every_resource(translated):
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for statement in granted_statements(translated, logical_id):
            for target in _list(statement["Resource"]):
                text = target["Fn::Sub"] if isinstance(target, dict) and "Fn::Sub" in target else str(target)
                assert text != "*" and "/index/" not in text, (logical_id, text)
                if "s3:::" in text and "s3:ListBucket" not in _list(statement["Action"]):
                    prefix = text.split("-${AWS::Region}", 1)[-1]
                    known = {"/incoming/*", "/masks/*", "/results/*", "/failed/*", "/superseded/*", "/staging/*"}
                    assert prefix in known, (logical_id, text)


def _list(value):
    return value if isinstance(value, list) else [value]


def test_a_permission_taken_out_fails_the_pipeline_with_access_denied(tmp_path):
    """Submit without states:StartExecution: the upload ends in a failure record, and the function's error is
    the AccessDeniedException the enforced policy answered."""
    text = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    weakened = tmp_path / "template.yaml"
    weakened.write_text(text.replace("Action: [states:StartExecution]", "Action: [states:DescribeExecution]", 1))
    assert weakened.read_text() != text
    pipeline, stack = build(("--qps", "0", "--time-scale", "0.01"), {"ApiQps": "20"}, template=weakened)
    with stack:
        key = "incoming/idphoto/denied.jpg"
        pipeline.upload(key, images.portrait())
        kind, record = pipeline.record(key, timeout_s=30)
        assert (kind, record["reason"]) == ("failed", "internal error")
        assert record["message"] == "the job could not be started (ClientError); it will be tried again"
        pipeline.runtime.wait_idle()  # the record is written before the function raises: let it finish
        errors = [i.result for i in pipeline.runtime.invocations if i.error]
        assert errors and "AccessDeniedException" in errors[0] and "StartExecution" in errors[0]
        assert not pipeline.executions()
