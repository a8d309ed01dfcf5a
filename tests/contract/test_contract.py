"""The client from `picwish_visual` against the API (mock or real): every endpoint, sync and async, file and URL input,
validation, state codes, 401/404/413/429 and result expiry."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from PIL import Image

from mock_server.launcher import start_mock
from picwish_visual import (
    AuthenticationError,
    ClientSettings,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PicWishClient,
    RateLimitError,
    ResultExpiredError,
    TaskFailedError,
    ValidationError,
    fetch_output,
)
from picwish_visual.states import TASK_STATES
from tests.support import images

PORTRAIT = images.portrait(120, 90)
PHOTO_PNG = images.photo(120, 90, fmt="PNG")
MASK = images.mask(120, 90)

CASES = {
    "idphoto": dict(image=PORTRAIT, options={"size": "150x200", "format": "jpg", "bg_color": "3366CC"}),
    "correction": dict(image=PORTRAIT, options={"type": 4}),
    "inpaint": dict(image=PHOTO_PNG, mask=MASK),
    "retouching-collection": dict(image=PHOTO_PNG, mask=MASK, retain_mask=images.mask(120, 90, box=(0, 0, 10, 10))),
    "clothing-segmentation": dict(image=PORTRAIT, options={"class_type": 3, "output_type": 3}),
}


def check_outputs(operation, result, settings):
    outputs = {name: fetch_output(out, settings) for name, out in result.outputs().items()}
    if operation == "clothing-segmentation":
        assert set(outputs) == {"hair", "face", "head", "body", "clothes_masks"}
        assert zipfile.ZipFile(io.BytesIO(outputs.pop("clothes_masks").data)).namelist()
        for got in outputs.values():
            assert Image.open(io.BytesIO(got.data)).mode == "L"
        return
    image = Image.open(io.BytesIO(outputs["image"].data))
    if operation == "idphoto":
        assert (image.format, image.size) == ("JPEG", (150, 200))
    elif operation == "correction":
        assert image.format == "PNG" and image.mode == "RGBA"
    else:
        assert image.size == (120, 90)


@pytest.mark.parametrize("operation", sorted(CASES))
def test_async_file_input_polls_to_done_with_downloadable_result(target, operation):
    client = target.client()
    case = CASES[operation]
    task = client.create_task(
        operation, case["image"], case.get("options"), mask=case.get("mask"), retain_mask=case.get("retain_mask")
    )
    assert task.task_id and task.state is None
    result = target.wait(client, operation, task.task_id)
    assert result.is_done and result.progress == 100 and result.completed_at >= result.created_at
    check_outputs(operation, result, target.settings)


@pytest.mark.parametrize("operation", sorted(CASES))
def test_sync_url_input(mock_target, files, operation):
    client = mock_target.client()
    case = CASES[operation]
    url = files.add(f"/{operation}/image", case["image"])
    mask = files.add(f"/{operation}/mask", case["mask"]) if "mask" in case else None
    result = client.create_task(operation, url, case.get("options"), mask=mask, sync=True)
    assert result.is_done
    check_outputs(operation, result, mock_target.settings)
    sent = mock_target.mock.requests(method="POST")[-1]["fields"]
    assert sent["image_url"] == url and sent["sync"] == 1


def test_sync_base64_and_binary(target):
    client = target.client()
    b64 = client.create_task(
        "inpaint", PHOTO_PNG, {"return_type": 2, "rectangles": [{"x": 1, "y": 1, "width": 9, "height": 9}]}, sync=True
    )
    assert b64.image.url is None and Image.open(io.BytesIO(b64.image.data)).size == (120, 90)
    binary = client.create_task("correction", PORTRAIT, {"return_type": 3}, sync=True)
    assert Image.open(io.BytesIO(binary.image.data)).format in ("JPEG", "PNG")


def test_url_input_unreachable_is_minus_3(mock_target, files):
    client = mock_target.client()
    with pytest.raises(TaskFailedError) as info:
        client.create_task("idphoto", files.url("/nothing-here.jpg"), sync=True)
    assert info.value.state == -3


def test_url_input_over_the_limit_is_minus_5(mock_target, files):
    url = files.add("/huge.jpg", PORTRAIT + b"\0" * (20 * 1024 * 1024))
    with pytest.raises(TaskFailedError) as info:
        mock_target.client().create_task("idphoto", url, sync=True)
    assert info.value.state == -5 and info.value.meaning == TASK_STATES[-5]


@pytest.mark.parametrize(
    ("operation", "kwargs", "param"),
    [
        ("idphoto", {"options": {"size": "300X400"}}, "size"),
        ("idphoto", {"options": {"bg_color": "FFFFFF"}}, "bg_color"),
        ("correction", {"options": {"return_type": 3}}, "return_type"),
        ("retouching-collection", {"options": {"retouch_strength": 101}, "mask": MASK}, "retouch_strength"),
        ("clothing-segmentation", {"options": {"class_type": 5}}, "class_type"),
        ("inpaint", {"options": {"rectangles": [{"x": 0, "y": 0, "width": 1, "height": 1}] * 51}}, "rectangles"),
    ],
)
def test_validation_local_and_remote(target, operation, kwargs, param):
    kwargs = dict(kwargs)
    options = kwargs.pop("options")
    with pytest.raises(ValidationError) as local:
        target.client().create_task(operation, PORTRAIT, options, **kwargs)
    assert local.value.param == param
    if target.is_mock:
        assert target.mock.requests() == []  # nothing was sent: no credit spent
    with pytest.raises(InvalidRequestError) as remote:
        target.client(validate=False).create_task(operation, PORTRAIT, options, **kwargs)
    assert remote.value.status == 400
    if target.is_mock:
        assert remote.value.message.startswith(param)


@pytest.mark.parametrize("state", sorted(s for s in TASK_STATES if s < 0))
def test_every_failure_state(target, state):
    client = target.client(prefer=f"state={state}")
    task = client.create_task("idphoto", PORTRAIT)
    with pytest.raises(TaskFailedError) as info:
        target.wait(client, "idphoto", task.task_id)
    assert (info.value.state, info.value.task_id, info.value.meaning) == (state, task.task_id, TASK_STATES[state])


def test_processing_states_are_reported(mock_target):
    client = mock_target.client(prefer="script=0|2|3|4|5|1, polls=6")
    task = client.create_task("idphoto", PORTRAIT)
    states = [client.get_task("idphoto", task.task_id).state for _ in range(6)]
    assert states == [0, 2, 3, 4, 5, 1]


def test_401_wrong_key(target):
    client = PicWishClient("definitely-not-a-key", settings=target.settings)
    with pytest.raises(AuthenticationError) as info:
        client.get_task("idphoto", "whatever")
    assert info.value.status == 401


def test_404_unknown_task(target):
    with pytest.raises(NotFoundError):
        target.client().get_task("idphoto", "00000000000000000000000000000000")


def test_413_upload_over_the_limit(target):
    big = PORTRAIT + b"\0" * (20 * 1024 * 1024 + 1)
    with pytest.raises(PayloadTooLargeError):
        target.client(validate=False).create_task("idphoto", big)


def test_429_in_the_body_of_an_http_200(mock_target):
    client = mock_target.client(prefer="status=429, body-status", max_retries=0)
    with pytest.raises(RateLimitError):
        client.create_task("idphoto", PORTRAIT)


def test_result_link_expires(mock_target):
    mock_target.mock.add_rule(operation="idphoto", result_ttl=0.3)
    result = mock_target.client().create_task("idphoto", PORTRAIT, sync=True)
    assert fetch_output(result.image, mock_target.settings).data
    time.sleep(0.4)
    with pytest.raises(ResultExpiredError):
        fetch_output(result.image, mock_target.settings)


def test_credits_and_journal_count_one_task_per_create(mock_target):
    client = mock_target.client()
    client.create_task("correction", PORTRAIT, sync=True)
    client.create_task("idphoto", PORTRAIT, sync=True)
    stats = mock_target.mock.credits()
    assert stats["credits"] == {mock_target.api_key: 3 + 1}
    assert stats["tasks_created"] == {mock_target.api_key: 2}


@pytest.fixture(scope="module")
def limited_mock():
    mock = start_mock("--qps", "2", "--time-scale", "0.01")
    yield mock
    mock.stop()


def test_qps_limit_and_recovery(limited_mock):
    settings = ClientSettings(base_url=limited_mock.url)
    strict = PicWishClient(limited_mock.api_key, settings=settings, max_retries=0)
    outcomes = []
    for _ in range(5):
        try:
            strict.get_task("idphoto", "x")
        except NotFoundError:
            outcomes.append(404)
        except RateLimitError as exc:
            outcomes.append(429)
            assert exc.retry_after == 1.0
    assert outcomes.count(404) == 2 and outcomes.count(429) == 3
    patient = PicWishClient(limited_mock.api_key, settings=settings, max_retries=3)
    with pytest.raises(NotFoundError):  # got through after waiting out the 429s
        patient.get_task("idphoto", "x")
