"""moto's S3 events name no version; `offline.moto_versions` adds the `versionId` S3 sends for a versioned bucket."""

from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3 import notifications
from moto.s3.models import s3_backends

from offline.moto_versions import name_versions_in_events


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3")
        for bucket in ("versioned", "plain"):
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        yield client


def event_object(event_of, bucket: str, key: str) -> dict:
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    found = backend.get_object(bucket, key)
    return event_of("s3:ObjectCreated:Put", backend.get_bucket(bucket), found, "upload")["Records"][0]["s3"]["object"]


def test_an_event_of_a_versioned_bucket_names_the_version_it_announces(s3):
    version = s3.put_object(Bucket="versioned", Key="incoming/a b.jpg", Body=b"first")["VersionId"]
    moto_own = getattr(notifications._get_s3_event, "__wrapped__", notifications._get_s3_event)
    assert "versionId" not in event_object(moto_own, "versioned", "incoming/a b.jpg")  # the difference
    name_versions_in_events()
    announced = event_object(notifications._get_s3_event, "versioned", "incoming/a b.jpg")
    assert (announced["versionId"], unquote_plus(announced["key"])) == (version, "incoming/a b.jpg")


def test_an_event_of_an_unversioned_bucket_names_none(s3):
    s3.put_object(Bucket="plain", Key="incoming/a.jpg", Body=b"x")
    name_versions_in_events()
    assert "versionId" not in event_object(notifications._get_s3_event, "plain", "incoming/a.jpg")
