"""Where moto's IAM enforcement differs from AWS, offline/moto_iam.py makes it answer as AWS does: policies that
name their table, secret, state machine or function allow exactly those; Lambda's Invoke is lambda:InvokeFunction;
denials are JSON AccessDeniedException; presigned URLs are authorized as their signer, until they expire."""

from __future__ import annotations

import json
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from offline.iam import operator
from offline.moto_iam import enforce_iam, journal_calls, relax_iam

ACCOUNT = "123456789012"


@pytest.fixture
def server(monkeypatch):
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    yield endpoint
    relax_iam()
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    moto.stop()


def client(endpoint, service, key, **config):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, **config),
    )


def user_with(iam, name, *statements):
    iam.create_user(UserName=name)
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def allow(action, resource):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.fixture
def world(server):
    bootstrap = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    iam = client(server, "iam", bootstrap)
    admin = operator(iam)
    ddb = client(server, "dynamodb", admin)
    for table in ("mine", "theirs"):
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    s3 = client(server, "s3", admin)
    s3.create_bucket(Bucket="uploads")
    for key in ("incoming/a.jpg", "elsewhere/b.jpg"):
        s3.put_object(Bucket="uploads", Key=key, Body=b"image")
    fn = user_with(
        iam,
        "fn",
        allow("dynamodb:PutItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/mine"),
        allow("dynamodb:BatchGetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/mine"),
        allow("s3:GetObject", "arn:aws:s3:::uploads/incoming/*"),
        allow("lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:allowed"),
    )
    enforce_iam(server)
    return server, fn


def code(call):
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return "ok"


def test_a_policy_naming_its_table_allows_that_table_only_and_denies_in_json(world):
    endpoint, fn = world
    ddb = client(endpoint, "dynamodb", fn)
    assert code(lambda: ddb.put_item(TableName="mine", Item={"k": {"S": "1"}})) == "ok"
    assert code(lambda: ddb.put_item(TableName="theirs", Item={"k": {"S": "1"}})) == "AccessDeniedException"
    assert code(lambda: ddb.delete_item(TableName="mine", Key={"k": {"S": "1"}})) == "AccessDeniedException"


def test_a_batch_read_is_authorized_on_the_table_it_reads(world):
    endpoint, fn = world
    ddb = client(endpoint, "dynamodb", fn)

    def batch(table):
        return lambda: ddb.batch_get_item(RequestItems={table: {"Keys": [{"k": {"S": "1"}}]}})

    assert code(batch("mine")) == "ok"
    assert code(batch("theirs")) == "AccessDeniedException"


def test_invoke_is_authorized_as_lambda_invoke_function_on_the_function(world):
    endpoint, fn = world
    functions = client(endpoint, "lambda", fn)
    # authorized, then not found (no such function): the policy let it through
    assert code(lambda: functions.invoke(FunctionName="allowed", Payload=b"{}")) == "ResourceNotFoundException"
    assert code(lambda: functions.invoke(FunctionName="allowed")) == "ResourceNotFoundException"  # no body
    assert code(lambda: functions.invoke(FunctionName="other", Payload=b"{}")) == "AccessDeniedException"
    assert code(lambda: functions.get_function(FunctionName="other")) == "AccessDeniedException"


def test_a_presigned_url_is_authorized_as_its_signer_until_it_expires(world):
    endpoint, fn = world
    s3 = client(endpoint, "s3", fn, signature_version="s3v4")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "uploads", "Key": "incoming/a.jpg"})
    assert (requests.get(url, timeout=5).status_code, requests.get(url, timeout=5).content) == (200, b"image")
    other = s3.generate_presigned_url("get_object", Params={"Bucket": "uploads", "Key": "elsewhere/b.jpg"})
    assert requests.get(other, timeout=5).status_code == 403
    short = s3.generate_presigned_url("get_object", Params={"Bucket": "uploads", "Key": "incoming/a.jpg"}, ExpiresIn=1)
    time.sleep(1.5)
    assert requests.get(short, timeout=5).status_code == 403


def test_unknown_credentials_are_refused(world):
    endpoint, _fn = world
    s3 = client(endpoint, "s3", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert code(lambda: s3.list_buckets()) == "InvalidAccessKeyId"


def test_a_missing_key_is_a_404_only_to_a_caller_allowed_to_list_the_bucket(world):
    endpoint, fn = world
    iam = client(endpoint, "iam", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    relax_iam()
    lister = user_with(
        iam,
        "lister",
        allow("s3:GetObject", "arn:aws:s3:::uploads/incoming/*"),
        allow("s3:ListBucket", "arn:aws:s3:::uploads"),
    )
    enforce_iam(endpoint)
    without, able = client(endpoint, "s3", fn), client(endpoint, "s3", lister)
    # moto alone answers 404 to both; S3 answers 403 to the caller who may not list the bucket
    assert code(lambda: without.head_object(Bucket="uploads", Key="incoming/gone.jpg")) == "403"
    assert code(lambda: without.get_object(Bucket="uploads", Key="incoming/gone.jpg")) == "AccessDenied"
    assert code(lambda: able.head_object(Bucket="uploads", Key="incoming/gone.jpg")) == "404"
    assert code(lambda: able.get_object(Bucket="uploads", Key="incoming/gone.jpg")) == "NoSuchKey"
    assert code(lambda: without.head_object(Bucket="uploads", Key="incoming/a.jpg")) == "ok"  # it exists


def test_the_journal_names_each_authorized_call_its_principal_action_and_resource(world):
    endpoint, fn = world
    with journal_calls() as journal:
        client(endpoint, "s3", fn).get_object(Bucket="uploads", Key="incoming/a.jpg")
        code(lambda: client(endpoint, "s3", fn).get_object(Bucket="uploads", Key="elsewhere/b.jpg"))  # denied
    assert dict(journal) == {("fn", "s3:GetObject", "arn:aws:s3:::uploads/incoming/a.jpg"): 1}
