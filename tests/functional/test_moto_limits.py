"""moto differs from S3 on key length; `offline.moto_limits` makes it refuse what S3 refuses."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from offline.moto_limits import enforce_s3_limits


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="limits")
        yield client


def test_s3_refuses_keys_over_1024_bytes(s3):
    enforce_s3_limits()
    s3.put_object(Bucket="limits", Key="k" * 1022 + "ü", Body=b"x")  # exactly 1,024 bytes: stored
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="limits", Key="k" * 1023 + "ü", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "KeyTooLongError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError, match="KeyTooLongError"):
        s3.create_multipart_upload(Bucket="limits", Key="m" * 1025)
