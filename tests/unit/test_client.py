"""The client's requests, response parsing, error mapping and retries, against `responses` (no sockets)."""

import base64
import json
import logging

import pytest
import requests
import responses

from picwish_visual import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    Backoff,
    ClientSettings,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PicWishClient,
    RateLimitError,
    TaskFailedError,
    UnexpectedResponseError,
    UnknownStateError,
    ValidationError,
    WaitTimeoutError,
)
from tests.support import images, multipart

BASE = "https://api.test"
KEY = "sk-unit-SECRET-0123456789"
IMG = images.photo(64, 48)
MASK = images.mask(64, 48)


def url(operation, task_id=None):
    return f"{BASE}/api/tasks/visual/{operation}" + (f"/{task_id}" if task_id else "")


def envelope(data=None, status=200, message="success"):
    return {"status": status, "message": message, "data": data}


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sleeps):
    return PicWishClient(
        KEY,
        settings=ClientSettings(base_url=BASE),
        backoff=Backoff(base_s=1.0, cap_s=8.0, jitter=lambda: 0.5),
        sleep=sleeps.append,
    )


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sent(call):
    return multipart.parse(call.request.headers["Content-Type"], call.request.body)


def test_create_sends_key_fields_and_files(client, api):
    api.post(url("retouching-collection"), json=envelope({"task_id": "t-1"}))
    result = client.create_task(
        "retouching-collection", IMG, {"retouch_strength": 80, "type": "2"}, mask=MASK, retain_mask=MASK
    )
    assert result.task_id == "t-1"
    call = api.calls[0]
    assert call.request.method == "POST"
    assert call.request.headers["X-API-KEY"] == KEY
    fields, files = sent(call)
    assert fields == {"sync": "0", "retouch_strength": "80", "type": "2"}
    assert files == {
        "image_file": ("image.jpg", IMG, "image/jpeg"),
        "mask_file": ("mask.png", MASK, "image/png"),
        "retain_mask_file": ("retain_mask.png", MASK, "image/png"),
    }


def test_create_with_urls_and_rectangles_sends_no_files(client, api):
    api.post(url("inpaint"), json=envelope({"task_id": "t-2"}))
    rects = [{"x": 1, "y": 2, "width": 3, "height": 4}]
    client.create_task("inpaint", "https://img.test/a.jpg", {"rectangles": rects, "return_type": 2})
    fields, files = sent(api.calls[0])
    assert files == {}
    assert fields == {
        "sync": "0",
        "image_url": "https://img.test/a.jpg",
        "rectangles": '[{"x":1,"y":2,"width":3,"height":4}]',
        "return_type": "2",
    }


def test_invalid_request_is_never_sent(client, api):
    with pytest.raises(ValidationError, match="size: must be"):
        client.create_task("idphoto", IMG, {"size": "10x10"})
    assert len(api.calls) == 0 and client.calls == 0


def test_sync_create_decodes_base64_and_reads_every_field(client, api):
    png = images.photo(10, 10, fmt="PNG")
    data = {
        "task_id": "t-3",
        "state": 1,
        "progress": 100,
        "created_at": "1700000000",
        "processed_at": "1700000001",
        "completed_at": "1700000004",
        "image": base64.b64encode(png).decode(),
        "return_type": 2,
        "type": 3,
        "time_elapsed": "3.2",
        "state_detail": "done",
    }
    api.post(url("retouching-collection"), json=envelope(data))
    result = client.create_task("retouching-collection", IMG, mask=MASK, sync=True)
    assert sent(api.calls[0])[0]["sync"] == "1"
    assert result.image.data == png and result.image.url is None
    assert (result.created_at, result.processed_at, result.completed_at) == (1700000000, 1700000001, 1700000004)
    assert (result.return_type, result.type, result.time_elapsed, result.state_detail) == (2, 3, "3.2", "done")
    assert result.is_done and result.progress == 100


def test_sync_binary_result(client, api):
    api.post(url("correction"), body=IMG, content_type="image/jpeg", headers={"X-Task-Id": "t-bin"})
    result = client.create_task("correction", IMG, {"return_type": 3}, sync=True)
    assert result.image.data == IMG and result.task_id == "t-bin" and result.is_done


def test_sync_failed_state_raises_with_meaning(client, api):
    api.post(url("idphoto"), json=envelope({"task_id": "t-4", "state": -7, "progress": 0}))
    with pytest.raises(TaskFailedError) as info:
        client.create_task("idphoto", IMG, sync=True)
    assert (info.value.state, info.value.task_id) == (-7, "t-4")
    assert info.value.meaning == "Invalid image file (e.g. corrupted image or incorrect format)."


def test_get_task_processing_then_done(client, api):
    api.get(url("idphoto", "t-5"), json=envelope({"task_id": "t-5", "state": 4, "progress": 60}))
    result = client.get_task("idphoto", "t-5")
    assert result.is_processing and result.progress == 60 and result.image is None
    assert api.calls[0].request.headers["X-API-KEY"] == KEY


def test_get_task_clothing_masks(client, api):
    data = {
        "task_id": "t-6",
        "state": 1,
        "progress": 100,
        "output_type": 3,
        "class_masks": {"tops": "https://res.test/tops.png", "acc": base64.b64encode(MASK).decode()},
        "clothes_masks": "https://res.test/masks.zip",
    }
    api.get(url("clothing-segmentation", "t-6"), json=envelope(data))
    result = client.get_task("clothing-segmentation", "t-6")
    assert result.class_masks["tops"].url == "https://res.test/tops.png"
    assert result.class_masks["acc"].data == MASK
    assert result.clothes_masks.url == "https://res.test/masks.zip"
    assert set(result.outputs()) == {"tops", "acc", "clothes_masks"} and result.output_type == 3


@pytest.mark.parametrize("state", [-17, -16, -15, -14, -13, -11, -10, -9, -8, -7, -5, -3, -2, -1])
def test_get_task_every_failed_state(client, api, state):
    api.get(url("inpaint", "t-f"), json=envelope({"task_id": "t-f", "state": state}))
    with pytest.raises(TaskFailedError) as info:
        client.get_task("inpaint", "t-f")
    assert info.value.state == state and info.value.task_id == "t-f"


@pytest.mark.parametrize("data", [{"task_id": "t", "state": v} for v in (7, -18, None, "1")] + [{"task_id": "t"}])
def test_get_task_unknown_state(client, api, data):
    api.get(url("inpaint", "t"), json=envelope(data))
    with pytest.raises(UnknownStateError):
        client.get_task("inpaint", "t")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
        (500, APIServerError),
        (503, APIServerError),
        (418, UnexpectedResponseError),
    ],
)
@pytest.mark.parametrize("in_body_only", [False, True])
def test_status_mapping_http_and_body(client, api, status, error, in_body_only):
    http_status = 200 if in_body_only else status
    api.get(url("idphoto", "t"), json=envelope(None, status, "boom"), status=http_status)
    with pytest.raises(error) as info:
        client.get_task("idphoto", "t")
    assert info.value.status == status and info.value.task_id == "t"


def test_body_status_is_authoritative_when_http_says_200(client, api):
    api.post(url("idphoto"), json=envelope(None, 429, "too many"), status=200)
    api.post(url("idphoto"), json=envelope({"task_id": "t-7"}))
    assert client.create_task("idphoto", IMG).task_id == "t-7"
    assert client.calls == 2


def test_429_honours_retry_after_plus_jitter_then_gives_up(client, api, sleeps):
    api.post(url("idphoto"), json=envelope(None, 429, "slow down"), status=429, headers={"Retry-After": "3"})
    with pytest.raises(RateLimitError) as info:
        client.create_task("idphoto", IMG)
    assert info.value.retry_after == 3.0
    assert client.calls == 3  # first try + max_retries=2
    assert sleeps == [3 + 0.5 * 1.0, 3 + 0.5 * 2.0]


def test_create_500_is_not_retried_because_a_task_may_exist(client, api, sleeps):
    api.post(url("idphoto"), json=envelope(None, 500, "oops"), status=500)
    with pytest.raises(APIServerError):
        client.create_task("idphoto", IMG)
    assert client.calls == 1 and sleeps == []


def test_poll_500_is_retried_with_backoff(client, api, sleeps):
    api.get(url("idphoto", "t"), json=envelope(None, 500), status=500)
    api.get(url("idphoto", "t"), json=envelope({"task_id": "t", "state": 2}))
    assert client.get_task("idphoto", "t").state == 2
    assert sleeps == [0.5]


def test_connect_timeout_on_create_is_retried(client, api, sleeps):
    api.post(url("idphoto"), body=requests.ConnectTimeout("no route"))
    api.post(url("idphoto"), json=envelope({"task_id": "t-8"}))
    assert client.create_task("idphoto", IMG).task_id == "t-8"
    assert sleeps == [0.5]


def test_read_timeout_on_create_is_not_retried(client, api, sleeps):
    api.post(url("idphoto"), body=requests.ReadTimeout("slow"))
    with pytest.raises(APIConnectionError) as info:
        client.create_task("idphoto", IMG)
    assert info.value.request_sent is True and sleeps == []


def test_bad_json_is_unexpected(client, api):
    api.get(url("idphoto", "t"), body="<html>oops</html>", status=200)
    with pytest.raises(UnexpectedResponseError):
        client.get_task("idphoto", "t")


def test_async_create_without_task_id_is_unexpected(client, api):
    api.post(url("idphoto"), json=envelope({}))
    with pytest.raises(UnexpectedResponseError, match="task_id"):
        client.create_task("idphoto", IMG)


def test_timeouts_are_sent(client, api):
    api.get(url("idphoto", "t"), json=envelope({"task_id": "t", "state": 0}))
    client.get_task("idphoto", "t")
    assert api.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)


def test_unknown_operation_and_bad_task_id(client):
    with pytest.raises(ValidationError, match="operation: unknown operation"):
        client.get_task("resize", "t")
    with pytest.raises(ValidationError, match="task_id"):
        client.get_task("idphoto", "../x")


def test_api_key_never_leaks_into_errors_reprs_or_logs(client, api, caplog):
    caplog.set_level(logging.DEBUG)
    api.get(url("idphoto", "t"), json=envelope(None, 401, "bad key"), status=401)
    api.post(url("idphoto"), body=requests.ConnectionError("reset"))
    seen = [repr(client)]
    for call in (lambda: client.get_task("idphoto", "t"), lambda: client.create_task("idphoto", IMG)):
        with pytest.raises(Exception) as info:
            call()
        seen += [str(info.value), repr(info.value), json.dumps(info.value.to_record())]
    seen.append(caplog.text)
    assert not any(KEY in text for text in seen)


def test_client_requires_a_key():
    with pytest.raises(ValueError):
        PicWishClient("")


# -- wait(): poll until done, at the docs' interval, within a deadline ---------------------------------------------


class Clock:
    """The client's monotonic clock, moved on by its sleeps."""

    def __init__(self, sleeps: list) -> None:
        self.now, self.sleeps = 100.0, sleeps

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clocked(sleeps):
    clock = Clock(sleeps)
    made = PicWishClient(
        KEY,
        settings=ClientSettings(base_url=BASE),
        backoff=Backoff(base_s=1.0, cap_s=8.0, jitter=lambda: 0.5),
        sleep=clock.sleep,
        clock=clock,
    )
    return made, clock


def test_wait_polls_at_the_docs_interval_until_the_task_is_done(api, clocked, sleeps):
    client, _ = clocked
    done = {"task_id": "t1", "state": 1, "progress": 100, "image": "https://r.test/x.png"}
    for data in ({"task_id": "t1", "state": 0}, {"task_id": "t1", "state": 2, "progress": 40}, done):
        api.add(responses.GET, url("idphoto", "t1"), json=envelope(data))
    result = client.wait("idphoto", "t1")
    assert result.is_done and result.image.url == "https://r.test/x.png"
    assert sleeps == [1, 1]  # idphoto's poll interval, between the three polls
    assert len(api.calls) == 3


def test_wait_honours_retry_after(api, clocked, sleeps):
    client, _ = clocked
    client.max_retries = 0
    api.add(
        responses.GET,
        url("idphoto", "t1"),
        json=envelope(status=429, message="slow"),
        status=429,
        headers={"Retry-After": "7"},
    )
    api.add(
        responses.GET, url("idphoto", "t1"), json=envelope({"task_id": "t1", "state": 1, "image": "https://r.test/x"})
    )
    assert client.wait("idphoto", "t1").is_done
    assert sleeps == [7.0]


def test_wait_gives_up_at_its_deadline_with_the_last_state(api, clocked, sleeps):
    client, clock = clocked
    api.add(responses.GET, url("idphoto", "t1"), json=envelope({"task_id": "t1", "state": 4, "progress": 90}))
    with pytest.raises(WaitTimeoutError) as timed_out:
        client.wait("idphoto", "t1", deadline_s=3.5)
    assert timed_out.value.task_id == "t1" and timed_out.value.state == 4
    assert "still processing after 3.5 s" in str(timed_out.value)
    assert sum(sleeps) <= 3.5 and clock.now - 100 <= 3.5


def test_wait_raises_a_failed_task_at_once(api, clocked, sleeps):
    client, _ = clocked
    api.add(responses.GET, url("idphoto", "t1"), json=envelope({"task_id": "t1", "state": -7}))
    with pytest.raises(TaskFailedError):
        client.wait("idphoto", "t1")
    assert sleeps == []
