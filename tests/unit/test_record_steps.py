"""Every branch of the steps that end a job — finalize, record a failure, the backstop — on fake services: the
keys written, in which order, and the record's reason."""

import json

import pytest

from picwish import ResultDownloadError, ResultExpiredError
from picwish.download import Downloaded
from picwish_pipeline import finalize
from picwish_pipeline.backstop import backstop_step
from picwish_pipeline.failures import record_failure_step
from picwish_pipeline.payloads import Outcome
from picwish_pipeline.services import TransientApiError
from tests.support.fake_services import OUTPUT_BUCKET, Fakes, event, step_input
from tests.support.images import photo

RESULT = "results/idphoto/fixtures/portrait.jpg/result.json"
FAILURE = "failed/idphoto/fixtures/portrait.jpg.json"
CREATED = {"status": "created", "task_id": "t-1", "created_at": 1795000000, "deadline_at": 1795000240, "api_calls": 1}


@pytest.fixture
def fakes():
    return Fakes()


def done(outputs):
    return {"phase": "done", "state": 1, "polls": 2, "api_calls": 3, "throttles": 0, "outputs": outputs}


def test_finalize_downloads_each_link_writes_it_and_result_json_last(fakes, monkeypatch):
    image = photo()
    fetched = []
    monkeypatch.setattr(finalize, "fetch_output", lambda o, s: fetched.append(o.url) or Downloaded(image, "image/jpeg"))
    fakes.s3.put(OUTPUT_BUCKET, FAILURE, b"{}")  # an older failure of the same upload
    fakes.now = 1795000005.25  # the API stamped the task completed at 1795000004
    out = finalize.finalize_step(fakes.svc, step_input("state-finalize.json"))
    key = "results/idphoto/fixtures/portrait.jpg/image.jpg"
    prefix = "results/idphoto/fixtures/portrait.jpg/"
    assert out == Outcome("succeeded", prefix, {"image": key}, processing_s=4.0, overhead_s=1.25)
    assert fetched == ["https://results.example.com/TASK-DONE/image.jpg"]
    assert fakes.s3.objects[(OUTPUT_BUCKET, key)]["Body"] == image
    written = [(op, k) for op, _, k in fakes.s3.log]
    assert written == [("put_object", key), ("delete_object", FAILURE), ("put_object", RESULT)]
    record = fakes.s3.json(OUTPUT_BUCKET, RESULT)
    assert (record["outcome"], record["task_id"], record["outputs"]) == ("succeeded", "TASK-DONE", {"image": key})
    assert (record["api_calls"], record["polls"], record["durations_s"]["task"]) == (3, 2, 4)
    assert record["durations_s"]["completed_to_written"] == out.overhead_s  # the metric is the record's figure


def test_finalize_keeps_an_output_already_written_by_the_poll(fakes):
    key = "results/idphoto/fixtures/portrait.jpg/image.png"
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"key": key}}))
    assert finalize.finalize_step(fakes.svc, payload).outputs == {"image": key}
    assert [op for op, _, _ in fakes.s3.log] == ["delete_object", "put_object"]


def test_finalize_records_an_expired_link_as_a_failure(fakes, monkeypatch):
    def expired(output, settings):
        raise ResultExpiredError("the link expired", status=403)

    monkeypatch.setattr(finalize, "fetch_output", expired)
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"url": "https://results.test/a"}}))
    out = finalize.finalize_step(fakes.svc, payload)
    assert out == Outcome("failed", reason="result expired", failure_key=FAILURE)
    assert fakes.s3.json(OUTPUT_BUCKET, FAILURE)["reason"] == "result expired"
    assert (OUTPUT_BUCKET, RESULT) not in fakes.s3.objects


def test_finalize_leaves_a_failed_download_to_the_state_machines_retry(fakes, monkeypatch):
    def broken(output, settings):
        raise ResultDownloadError("connection reset")

    monkeypatch.setattr(finalize, "fetch_output", broken)
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"url": "https://results.test/a"}}))
    with pytest.raises(TransientApiError, match="result download failed: connection reset"):
        finalize.finalize_step(fakes.svc, payload)
    assert fakes.s3.objects == {}


@pytest.mark.parametrize(
    ("name", "parts", "reason", "message"),
    [
        ("state-record-failure-caught.json", {}, "step failed", "APIServerError talking to the API"),
        ("state-record-failure-timeout.json", {}, "timeout", "the task was still processing after 240 s"),
        (
            "state-record-failure-timeout.json",
            {"poll": {"phase": "timeout", "state": 4, "errors": 3, "last_error": {"message": "502", "status": 502}}},
            "timeout",
            "no answer about the task for 3 polls before the 240 s deadline; the last: 502",
        ),
        (
            "state-record-failure-caught.json",
            {
                "error": None,
                "create": {"status": "failed", "reason": "rejected by the API", "error": {"message": "no"}},
            },
            "rejected by the API",
            "no",
        ),
        (
            "state-record-failure-caught.json",
            {
                "error": None,
                "poll": {"phase": "failed", "failure": {"reason": "task failed", "error": {"message": "x"}}},
            },
            "task failed",
            "x",
        ),
        ("state-record-failure-caught.json", {"error": None, "poll": {"state": -7}}, "task failed", ""),
        (
            "state-record-failure-caught.json",
            {"error": None, "poll": {"state": "1"}},
            "unknown state",
            "undocumented task state '1'",
        ),
    ],
    ids=["caught", "deadline", "deadline while failing", "create failed", "poll failed", "failed state", "odd state"],
)
def test_a_failure_record_says_what_failed(fakes, name, parts, reason, message):
    payload = step_input(name, **parts)
    key = f"failed/idphoto/fixtures/{payload.job.upload.key.rsplit('/', 1)[-1]}.json"
    out = record_failure_step(fakes.svc, payload)
    assert out == Outcome("failed", reason=reason, failure_key=key)
    record = fakes.s3.json(OUTPUT_BUCKET, key)
    assert (record["outcome"], record["reason"], record["message"]) == ("failed", reason, message)
    assert "stackTrace" not in json.dumps(record)


def test_the_backstop_writes_a_record_only_for_an_upload_without_one(fakes):
    failed = event("eventbridge-execution-failed.json")
    key = "failed/idphoto/fixtures/gone.jpg.json"
    assert backstop_step(fakes.svc, failed) == Outcome("failed", reason="execution failed", failure_key=key)
    assert fakes.s3.json(OUTPUT_BUCKET, key)["message"] == "The SecondsPath parameter cannot be parsed as a long value"
    assert backstop_step(fakes.svc, failed) == Outcome("already recorded")


def test_the_backstop_ignores_an_execution_without_a_job(fakes):
    failed = event("eventbridge-execution-failed.json")
    failed["detail"]["input"] = "not json"
    assert backstop_step(fakes.svc, failed) == Outcome("ignored") and fakes.s3.objects == {}


def test_the_backstop_ignores_an_execution_whose_job_is_not_an_upload(fakes):
    failed = event("eventbridge-execution-failed.json")
    job = json.loads(failed["detail"]["input"])
    job["job"]["upload"]["key"] = "elsewhere/photo.jpg"
    failed["detail"]["input"] = json.dumps(job)
    assert backstop_step(fakes.svc, failed) == Outcome("ignored") and fakes.s3.objects == {}
