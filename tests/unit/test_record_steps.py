"""Every branch of the steps that end a job — finalize, record a failure, the backstop — on fake services: the
keys written, in which order, and the record's reason."""

import json

import pytest

from picwish_pipeline import finalize
from picwish_pipeline.backstop import backstop_step
from picwish_pipeline.failures import record_failure_step
from picwish_pipeline.keyrecord import KeyBusy
from picwish_pipeline.payloads import Outcome
from picwish_pipeline.services import TransientApiError
from picwish_visual import ResultDownloadError, ResultExpiredError
from picwish_visual.download import Downloaded
from tests.support.fake_services import OUTPUT_BUCKET, Fakes, event, step_input
from tests.support.images import photo

INPUT, UPLOAD = "picwish-input-123456789012-us-east-1", "incoming/idphoto/fixtures/portrait.jpg"
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
    monkeypatch.setattr(
        finalize, "fetch_output", lambda o, s, **kw: fetched.append(o.url) or Downloaded(image, "image/jpeg")
    )
    fakes.s3.put(OUTPUT_BUCKET, FAILURE, b"{}")  # an older failure of the same upload
    fakes.now = 1795000005.25  # the API stamped the task completed at 1795000004
    out = finalize.finalize_step(fakes.svc, step_input("state-finalize.json"))
    key = "results/idphoto/fixtures/portrait.jpg/image.jpg"
    prefix = "results/idphoto/fixtures/portrait.jpg/"
    assert out == Outcome("succeeded", prefix, {"image": key}, processing_s=4.0, overhead_s=1.25)
    assert fetched == ["https://results.example.com/TASK-DONE/image.jpg"]
    assert fakes.s3.objects[(OUTPUT_BUCKET, key)]["Body"] == image
    written = [(op, k) for op, _, k in fakes.s3.log]
    assert written == [
        ("head_object", UPLOAD),  # still the key's newest version, judged under the key's lock
        ("delete_object", RESULT),
        ("delete_object", FAILURE),
        ("put_object", key),
        ("list_objects_v2", prefix),
        ("put_object", RESULT),  # the commit marker, last
    ]
    record = fakes.s3.json(OUTPUT_BUCKET, RESULT)
    assert (record["outcome"], record["task_id"], record["outputs"]) == ("succeeded", "TASK-DONE", {"image": key})
    assert (record["api_calls"], record["polls"], record["durations_s"]["task"]) == (3, 2, 4)
    assert record["durations_s"]["completed_to_written"] == out.overhead_s  # the metric is the record's figure


def test_finalize_writes_an_output_the_poll_staged_under_the_key(fakes):
    image, staged = photo(fmt="PNG"), "staging/exec-1/image"
    fakes.s3.put(OUTPUT_BUCKET, staged, image)
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"key": staged}}))
    key = "results/idphoto/fixtures/portrait.jpg/image.png"
    assert finalize.finalize_step(fakes.svc, payload).outputs == {"image": key}
    assert fakes.s3.in_bucket(OUTPUT_BUCKET)[key] == image
    assert staged in fakes.s3.in_bucket(OUTPUT_BUCKET)  # kept for a retried finalize; a lifecycle rule ends it


def test_finalize_of_a_replaced_upload_writes_nothing_under_the_key(fakes, monkeypatch):
    monkeypatch.setattr(finalize, "fetch_output", lambda o, s, **kw: Downloaded(photo(), "image/jpeg"))
    newer = fakes.s3.put(INPUT, UPLOAD, b"a newer upload")
    fakes.s3.put(OUTPUT_BUCKET, RESULT, b'{"source": {"version_id": "newer"}}')
    before = dict(fakes.s3.in_bucket(OUTPUT_BUCKET))
    payload = step_input("state-finalize.json")
    assert finalize.finalize_step(fakes.svc, payload) == Outcome("superseded")
    after = fakes.s3.in_bucket(OUTPUT_BUCKET)
    history = f"superseded/idphoto/fixtures/portrait.jpg/{payload.job.upload.version_id}.json"
    assert set(after) - set(before) == {history}
    assert all(after[k] == v for k, v in before.items())
    record = fakes.s3.json(OUTPUT_BUCKET, history)
    assert (record["outcome"], record["newest_version_id"], record["task_id"]) == ("superseded", newer, "TASK-DONE")


def test_finalize_clears_outputs_an_older_version_left_but_not_a_longer_keys(fakes, monkeypatch):
    monkeypatch.setattr(finalize, "fetch_output", lambda o, s, **kw: Downloaded(photo(), "image/jpeg"))
    prefix = "results/idphoto/fixtures/portrait.jpg/"
    fakes.s3.put(OUTPUT_BUCKET, f"{prefix}image.png", b"an older version's output")
    fakes.s3.put(OUTPUT_BUCKET, f"{prefix}deeper.jpg/image.png", b"incoming/idphoto/fixtures/portrait.jpg/deeper.jpg")
    finalize.finalize_step(fakes.svc, step_input("state-finalize.json"))
    under = sorted(k for k in fakes.s3.in_bucket(OUTPUT_BUCKET) if k.startswith(prefix))
    assert under == [f"{prefix}deeper.jpg/image.png", f"{prefix}image.jpg", f"{prefix}result.json"]


def test_a_failure_record_replaces_the_result_and_outputs_of_an_older_version(fakes):
    prefix = "results/idphoto/fixtures/gone.jpg/"
    fakes.s3.put(OUTPUT_BUCKET, f"{prefix}image.png", b"an older version's output")
    fakes.s3.put(OUTPUT_BUCKET, f"{prefix}result.json", b"{}")
    record_failure_step(fakes.svc, step_input("state-record-failure-caught.json"))
    assert sorted(fakes.s3.in_bucket(OUTPUT_BUCKET)) == ["failed/idphoto/fixtures/gone.jpg.json"]


def test_a_record_waits_for_another_job_of_the_key_then_gives_the_retry_its_turn(fakes):
    fakes.tasks.items["record#idphoto/fixtures/portrait.jpg"] = {
        "execution": {"S": "record#idphoto/fixtures/portrait.jpg"},
        "lock_owner": {"S": "another-execution"},
        "held_until": {"N": repr(fakes.now + 60)},
    }
    with pytest.raises(KeyBusy):
        finalize.finalize_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=done({})))
    assert fakes.s3.in_bucket(OUTPUT_BUCKET) == {}
    fakes.now += 60  # a holder that died lets go when its hold runs out
    assert finalize.finalize_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=done({}))).status == (
        "succeeded"
    )


def test_finalize_records_an_expired_link_as_a_failure(fakes, monkeypatch):
    def expired(output, settings, **kw):
        raise ResultExpiredError("the link expired", status=403)

    monkeypatch.setattr(finalize, "fetch_output", expired)
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"url": "https://results.test/a"}}))
    out = finalize.finalize_step(fakes.svc, payload)
    assert out == Outcome("failed", reason="result expired", failure_key=FAILURE)
    assert fakes.s3.json(OUTPUT_BUCKET, FAILURE)["reason"] == "result expired"
    assert (OUTPUT_BUCKET, RESULT) not in fakes.s3.objects


def test_finalize_leaves_a_failed_download_to_the_state_machines_retry(fakes, monkeypatch):
    def broken(output, settings, **kw):
        raise ResultDownloadError("connection reset")

    monkeypatch.setattr(finalize, "fetch_output", broken)
    payload = step_input("state-poll.json", create=CREATED, poll=done({"image": {"url": "https://results.test/a"}}))
    with pytest.raises(TransientApiError, match="result download failed: connection reset"):
        finalize.finalize_step(fakes.svc, payload)
    assert fakes.s3.in_bucket(OUTPUT_BUCKET) == {}


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


def test_the_backstop_writes_over_the_record_of_an_older_version(fakes):
    failed = event("eventbridge-execution-failed.json")
    key = "failed/idphoto/fixtures/gone.jpg.json"
    older = {"outcome": "failed", "reason": "task failed", "source": {"key": "x", "version_id": "an-older-one"}}
    fakes.s3.put(OUTPUT_BUCKET, key, json.dumps(older).encode())
    assert backstop_step(fakes.svc, failed) == Outcome("failed", reason="execution failed", failure_key=key)
    assert (
        fakes.s3.json(OUTPUT_BUCKET, key)["source"]["version_id"]
        == json.loads(failed["detail"]["input"])["job"]["upload"]["version_id"]
    )


def test_the_backstop_ignores_an_execution_without_a_job(fakes):
    failed = event("eventbridge-execution-failed.json")
    failed["detail"]["input"] = "not json"
    assert backstop_step(fakes.svc, failed) == Outcome("ignored") and fakes.s3.in_bucket(OUTPUT_BUCKET) == {}


def test_the_backstop_ignores_an_execution_whose_job_is_not_an_upload(fakes):
    failed = event("eventbridge-execution-failed.json")
    job = json.loads(failed["detail"]["input"])
    job["job"]["upload"]["key"] = "elsewhere/photo.jpg"
    failed["detail"]["input"] = json.dumps(job)
    assert backstop_step(fakes.svc, failed) == Outcome("ignored") and fakes.s3.in_bucket(OUTPUT_BUCKET) == {}


def test_finalize_downloads_share_one_budget_inside_its_timeout(fakes, monkeypatch):
    deadlines = []

    def slow(output, settings, deadline_s):  # a slow result host: each download takes 50 s
        deadlines.append(deadline_s)
        fakes.now += 50
        return Downloaded(photo(fmt="PNG"), "image/png")

    monkeypatch.setattr(finalize, "fetch_output", slow)
    masks = {name: {"url": f"https://results.test/{name}.png"} for name in ("hair", "tops", "bottoms")}
    payload = step_input("state-poll.json", create=CREATED, poll=done(masks))
    with pytest.raises(TransientApiError, match="took longer than 90 s to download"):
        finalize.finalize_step(fakes.svc, payload)
    assert deadlines == [60.0, 40.0]  # the second gets what is left of the 90 s; the third is not started
    assert fakes.s3.in_bucket(OUTPUT_BUCKET) == {}  # nothing written: the retry starts over
