"""What a user of the wheel does: a round trip through the client, a forced failure, the journal, a typed error."""

import io
import sys
import time
from pathlib import Path

import picwish_visual_mock
import pytest
import requests
from PIL import Image

import picwish_visual
from picwish_visual import AuthenticationError, PicWishClient, TaskFailedError, fetch_output


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 60, 40)).save(out, "JPEG")
    return out.getvalue()


def finished(client: PicWishClient, task_id: str):
    deadline = time.monotonic() + 30
    while True:
        result = client.get_task("idphoto", task_id)
        if result.is_done or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_the_packages_come_from_the_installed_wheel_not_a_checkout():
    venv = Path(sys.prefix)
    assert Path(picwish_visual.__file__).is_relative_to(venv) and Path(picwish_visual_mock.__file__).is_relative_to(
        venv
    )
    assert (Path(picwish_visual.__file__).parent / "py.typed").exists()


def test_a_round_trip_through_the_client(picwish_mock):
    settings = picwish_mock.client_settings()  # the mock's URL; its loopback result links allowed
    client = PicWishClient(picwish_mock.api_key, settings=settings)
    task = client.create_task("idphoto", ("me.jpg", photo()), {"size": "150x200"})
    result = client.wait("idphoto", task.task_id, deadline_s=30)
    assert result.is_done and result.image is not None
    image = fetch_output(result.image, settings)
    assert image.data[:4] == b"\x89PNG" or image.data[:2] == b"\xff\xd8"


def test_a_rule_forces_a_failure_the_client_raises_typed(picwish_mock):
    picwish_mock.add_rule(operation="idphoto", state=-7)
    client = PicWishClient(picwish_mock.api_key, base_url=picwish_mock.url)
    task = client.create_task("idphoto", ("me.jpg", photo()), {})
    with pytest.raises(TaskFailedError) as failed:
        finished(client, task.task_id)
    assert failed.value.state == -7


def test_the_journal_shows_what_was_sent(picwish_mock):
    client = PicWishClient(picwish_mock.api_key, base_url=picwish_mock.url)
    client.create_task("idphoto", ("me.jpg", photo()), {"size": "150x200"})
    [sent] = picwish_mock.requests(method="POST")
    assert sent["operation"] == "idphoto" and sent["fields"]["size"] == "150x200"


def test_a_wrong_key_is_an_authentication_error(picwish_mock):
    client = PicWishClient("not-the-key", base_url=picwish_mock.url, max_retries=0)
    with pytest.raises(AuthenticationError) as refused:
        client.create_task("idphoto", ("me.jpg", photo()), {})
    assert refused.value.status == 401


def test_the_mock_serves_its_openapi_document(picwish_mock):
    document = requests.get(f"{picwish_mock.url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.") and "/api/tasks/visual/idphoto" in document["paths"]
