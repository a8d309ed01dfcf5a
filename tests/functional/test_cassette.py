"""Record and replay (`picwish-mock --record DIR --upstream URL`, `--replay DIR`): a session through the recorder
(the mock, in another process, stands in for the real API) is answered the same way by the player, on the
recorded clock; the cassette keeps neither the key nor any presigned query string."""

from __future__ import annotations

import json
import time

import pytest

from mock_server.cassette import CASSETTE, Cassette, redact
from mock_server.launcher import start_mock
from picwish_visual.client import PicWishClient
from picwish_visual.config import ClientSettings
from picwish_visual.errors import PicWishError
from tests.support import images

KEY = "mock-key-1"
SIGNED = "https://bucket.s3.amazonaws.com/in/me.jpg?X-Amz-Credential=AKIA&X-Amz-Signature=abc"


def _session(url: str, at: list[float] | None = None) -> list[tuple[float, object, object]]:
    """An idphoto task created and polled every 0.3 s until it ends, or at the moments `at` (since the create's
    answer): (time since the create, state, progress) of each poll."""
    settings = ClientSettings(base_url=url, result_hosts=("127.0.0.1",), allow_http_results=True)
    client = PicWishClient(KEY, settings=settings)
    task = client.create_task("idphoto", images.portrait(), {"size": "295x413"})
    created, seen = time.monotonic(), []
    for moment in at or iter(int, 1):  # as told, else until done
        if at is not None:
            time.sleep(max(0.0, created + moment - time.monotonic()))
        polled = time.monotonic() - created
        result = client.get_task("idphoto", task.task_id)
        seen.append((polled, result.state, result.progress))
        if result.state == 1 and at is None:
            break
        if at is None:
            time.sleep(0.3)
    return seen


@pytest.fixture
def upstream():
    mock = start_mock("--qps", "0")
    mock.add_rule(operation="idphoto", polls=4)  # processing at three polls, done at the fourth, however busy the host
    yield mock
    mock.stop()


def test_a_recorded_session_replays_with_the_same_answers_on_the_recorded_clock(upstream, tmp_path):
    recorder = start_mock("--record", str(tmp_path), "--upstream", upstream.url)
    try:
        recorded = _session(recorder.url)
    finally:
        recorder.stop()
    player = start_mock("--replay", str(tmp_path))
    try:
        # polled at the moments the cassette holds (each since its create's answer), a little after each
        [polls] = Cassette.load(tmp_path).polls.values()
        replayed = _session(player.url, at=[since + 0.05 for since, _ in polls])
        with pytest.raises(PicWishError, match="no more creates of idphoto"):
            _session(player.url)  # the cassette held one create
    finally:
        player.stop()
    assert len(recorded) >= 3 and recorded[0][1] == 0 and recorded[-1][1] == 1  # processing, then done
    assert [(s, p) for _, s, p in replayed] == [(s, p) for _, s, p in recorded]


def test_the_cassette_keeps_no_key_and_no_presigned_query(upstream, tmp_path):
    recorder = start_mock("--record", str(tmp_path), "--upstream", upstream.url)
    try:
        _session(recorder.url)
    finally:
        recorder.stop()
    text = (tmp_path / CASSETTE).read_text()
    assert KEY not in text
    exchanges = [json.loads(line) for line in text.splitlines()]
    assert exchanges[0]["files"] == ["image_file"] and exchanges[0]["fields"] == {"size": "295x413", "sync": "0"}
    links = [e["body"]["data"]["image"] for e in exchanges if (e["body"].get("data") or {}).get("image")]
    assert links and all(link.endswith("?redacted") or "?" not in link for link in links)
    assert redact({"image_url": SIGNED, "n": [SIGNED]}) == {
        "image_url": "https://bucket.s3.amazonaws.com/in/me.jpg?redacted",
        "n": ["https://bucket.s3.amazonaws.com/in/me.jpg?redacted"],
    }
