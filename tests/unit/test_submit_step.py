"""Every branch of the submit step, on fake services: the execution it starts (name and input), and the failure
record it writes instead when the upload cannot be a job."""

import json

import pytest

from picwish_pipeline.submit import submit_event
from picwish_pipeline.uploads import UploadRef
from tests.support.fake_services import OUTPUT_BUCKET, Fakes, client_error, event
from tests.support.images import photo

INPUT = "picwish-input-123456789012-us-east-1"
ME = "incoming/idphoto/My Photos/über me (1).jpg"
ME_FAILED = "failed/idphoto/My Photos/über me (1).jpg.json"


@pytest.fixture
def fakes():
    return Fakes()


def uploaded(fakes, event_name: str, key: str, body: bytes, metadata: dict | None = None) -> None:
    """The object in the input bucket at the version the event names (the bucket is versioned)."""
    refs = [UploadRef.from_event_record(r) for r in event(event_name)["Records"]]
    [ref] = [r for r in refs if r.key == key]
    fakes.s3.put(INPUT, key, body, metadata=metadata, version_id=ref.version_id)


def test_an_upload_starts_one_execution_named_for_it_with_its_job_as_input(fakes):
    uploaded(fakes, "s3-put-idphoto.json", ME, photo(), metadata={"size": "295x413"})
    assert submit_event(fakes.svc, event("s3-put-idphoto.json")) == {
        "started": 1,
        "duplicate": 0,
        "rejected": 0,
        "ignored": 0,
    }
    [started] = fakes.sfn.started
    assert started["stateMachineArn"] == fakes.svc.settings.state_machine_arn
    assert started["name"].startswith("idphoto-") and len(started["name"]) <= 80
    assert json.loads(started["input"]) == {
        "job": {
            "upload": {
                "bucket": INPUT,
                "key": ME,
                "version_id": "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIb01",
                "etag": "0123456789abcdef0123456789abcdef",
                "sequencer": "0062B4C0F3A1D2E3F4",
            },
            "operation": "idphoto",
            "options": {"size": "295x413"},
            "masks": {},
            "ignored_metadata": [],
        },
        "create": {"status": "new", "throttles": 0, "api_calls": 0},
        "poll": {"phase": "processing", "state": 0, "polls": 0, "errors": 0},
        "error": None,
    }


def test_a_redelivered_event_is_a_duplicate_not_a_second_job(fakes):
    uploaded(fakes, "s3-put-idphoto.json", ME, photo())
    fakes.sfn.fail_with = client_error("ExecutionAlreadyExists", "StartExecution")
    assert submit_event(fakes.svc, event("s3-put-idphoto.json"))["duplicate"] == 1
    assert fakes.s3.in_bucket(OUTPUT_BUCKET) == {}  # no record: the first delivery's job writes it


def test_every_record_of_a_notification_is_judged_on_its_own(fakes):
    uploaded(fakes, "s3-put-multi.json", "incoming/idphoto/batch/a b.jpg", photo())
    uploaded(fakes, "s3-put-multi.json", "incoming/correction/batch/ünï cödé.jpg", b"not an image")
    uploaded(fakes, "s3-put-multi.json", "incoming/resize/batch/c.jpg", photo())
    counts = submit_event(fakes.svc, event("s3-put-multi.json"))
    assert counts == {"started": 1, "duplicate": 0, "rejected": 2, "ignored": 0}
    unknown = fakes.s3.json(OUTPUT_BUCKET, "failed/resize/batch/c.jpg.json")
    assert (unknown["reason"], unknown["parameter"]) == ("unknown operation", "operation")
    assert unknown["message"] == (
        "operation: must be one of retouching-collection, correction, inpaint, clothing-segmentation, idphoto; "
        "got 'resize'"
    )
    bad = fakes.s3.json(OUTPUT_BUCKET, "failed/correction/batch/ünï cödé.jpg.json")
    assert (bad["reason"], bad["parameter"]) == ("invalid input", "image_file")


def test_an_upload_deleted_before_it_was_read_gets_a_record(fakes):
    assert submit_event(fakes.svc, event("s3-put-idphoto.json"))["rejected"] == 1
    record = fakes.s3.json(OUTPUT_BUCKET, ME_FAILED)
    assert (record["reason"], record["message"]) == (
        "object missing",
        "the upload was deleted before its job ended; nothing was written for it",
    )
    assert fakes.sfn.started == []


def test_a_start_that_fails_leaves_an_internal_error_record_and_goes_on_to_lambdas_retry(fakes):
    uploaded(fakes, "s3-put-idphoto.json", ME, photo())
    fakes.sfn.fail_with = client_error("ServiceUnavailable", "StartExecution")
    with pytest.raises(Exception, match="ServiceUnavailable"):
        submit_event(fakes.svc, event("s3-put-idphoto.json"))
    record = fakes.s3.json(OUTPUT_BUCKET, ME_FAILED)
    assert record["reason"] == "internal error"
    assert record["message"] == "the job could not be started (ClientError); it will be tried again"


def test_a_throttled_start_is_waited_out_with_backoff_until_submit_s_budget_runs_out(fakes):
    uploaded(fakes, "s3-put-idphoto.json", ME, photo())
    fakes.sfn.fail_with = client_error("ThrottlingException", "StartExecution")
    started_at = fakes.now
    with pytest.raises(Exception, match="ThrottlingException"):
        submit_event(fakes.svc, event("s3-put-idphoto.json"))
    waited = fakes.now - started_at
    assert 30 < waited <= 40  # START_BUDGET_S, in backoffs of at most 5 s
    assert fakes.s3.json(OUTPUT_BUCKET, ME_FAILED)["message"] == (
        "the job could not be started (ClientError); it will be tried again"
    )


def test_the_test_event_s3_sends_on_setup_starts_nothing(fakes):
    assert submit_event(fakes.svc, event("s3-test-event.json"))["ignored"] == 1
    assert fakes.sfn.started == [] and fakes.s3.log == []
