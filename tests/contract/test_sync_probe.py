"""The sync question, asked of the real API only (PICWISH_API_KEY): a create with `sync=1` holds until its task
ends — for how long at most, what comes back when a task outlives the hold, and whether sync creates in flight
count against the QPS (if a held request is one call, a sync create processes an image in one call, not two).
Every exchange goes through the recorder, so the answers are kept as a cassette (PICWISH_PROBE_DIR, else a
temporary directory, printed); the findings are printed and written beside it (`sync-probe.json`)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from mock_server.launcher import start_mock
from picwish_visual.config import ENV_API_KEY, ClientSettings
from tests.support import images

KEY = os.environ.get(ENV_API_KEY)
pytestmark = pytest.mark.skipif(not KEY, reason="asks the real API (PICWISH_API_KEY)")


@pytest.fixture(scope="module")
def through_recorder(tmp_path_factory):
    directory = Path(os.environ.get("PICWISH_PROBE_DIR") or tmp_path_factory.mktemp("sync-probe"))
    recorder = start_mock("--record", str(directory), "--upstream", ClientSettings.from_env().base_url)
    yield recorder.url, directory
    recorder.stop()


def _create(url: str, operation: str, fields: dict, image: bytes) -> tuple[float, int, dict]:
    """(seconds held, HTTP status, body) of one create."""
    started = time.monotonic()
    answer = requests.post(
        f"{url}/api/tasks/visual/{operation}",
        headers={"X-API-KEY": str(KEY)},
        data=fields,
        files={"image_file": ("probe.jpg", image, "image/jpeg")},
        timeout=300,
    )
    return round(time.monotonic() - started, 2), answer.status_code, answer.json()


def test_how_a_sync_create_is_held_and_counted(through_recorder):
    url, directory = through_recorder
    findings: dict = {}
    held, status, body = _create(url, "idphoto", {"sync": "1"}, images.portrait(295, 413))
    findings["one_sync_create"] = {"held_s": held, "status": status, "state": (body.get("data") or {}).get("state")}
    # A task that may outlive the hold: the slowest operation, on a large image.
    held, status, body = _create(url, "retouching-collection", {"sync": "1"}, images.portrait(3000, 4000))
    findings["long_sync_create"] = {"held_s": held, "status": status, "data_keys": sorted(body.get("data") or {})}
    # QPS + 1 sync creates at once (QPS 2 by default), and polls of nothing else: are any refused 429?
    qps = int(float(os.environ.get("PICWISH_QPS", "2")))
    with ThreadPoolExecutor(qps + 1) as pool:
        answers = list(pool.map(lambda _: _create(url, "idphoto", {"sync": "1"}, images.portrait()), range(qps + 1)))
    findings["concurrent_sync_creates"] = {"count": qps + 1, "statuses": [status for _h, status, _b in answers]}
    (directory / "sync-probe.json").write_text(json.dumps(findings, indent=2))
    print(f"\nsync probe ({directory}):\n{json.dumps(findings, indent=2)}")
    assert findings["one_sync_create"]["status"] in (200, 429)
