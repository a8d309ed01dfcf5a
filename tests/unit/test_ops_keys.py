"""picwish-ops finds a job's records where the pipeline writes them, long keys included (not by re-deriving the
layout), and by the exact key."""

from botocore.exceptions import ClientError

from ops import redrive
from ops.target import Target
from picwish_pipeline.uploads import parse_job_path

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
