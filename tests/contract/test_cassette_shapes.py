"""The mock's answers in the shapes of a recording of the API, field by field and type by type: a cassette from
PICWISH_CASSETTE (`picwish-mock --record DIR --upstream https://…` with a real key), else one recorded here on
loopback through the recorder (the mock, in another process, standing in for the API)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from mock_server.cassette import Cassette, shape_differences
from mock_server.launcher import start_mock
from tests.support import images

ENV_CASSETTE = "PICWISH_CASSETTE"


@pytest.fixture(scope="module")
def cassette(tmp_path_factory) -> Cassette:
    if os.environ.get(ENV_CASSETTE):
        return Cassette.load(Path(os.environ[ENV_CASSETTE]))
    directory = tmp_path_factory.mktemp("cassette")
    upstream = start_mock("--qps", "0", "--time-scale", "0.01")
    recorder = start_mock("--record", str(directory), "--upstream", upstream.url)
    try:
        _session(recorder.url, upstream.api_key, "idphoto")
    finally:
        recorder.stop()
        upstream.stop()
    return Cassette.load(directory)


def _session(url: str, key: str, operation: str) -> list[dict]:
    """A task created and polled until it ends: the answers' bodies, the create's first."""
    headers = {"X-API-KEY": key}
    files = {"image_file": ("me.jpg", images.portrait(), "image/jpeg")}
    created = requests.post(f"{url}/api/tasks/visual/{operation}", headers=headers, files=files, timeout=10).json()
    task, answers = created["data"]["task_id"], [created]
    while len(answers) < 200:
        polled = requests.get(f"{url}/api/tasks/visual/{operation}/{task}", headers=headers, timeout=10).json()
        answers.append(polled)
        if polled["data"]["state"] == 1 or polled["data"]["state"] < 0:  # done or failed; else processing
            return answers
        time.sleep(0.05)
    raise AssertionError("the task never ended")


def test_the_mock_answers_in_the_shapes_the_recording_holds(cassette, mock_target):
    checked = set()
    for operation, creates in cassette.creates.items():
        mine = _session(mock_target.settings.base_url, mock_target.api_key, operation)
        by_state = {answer["data"].get("state"): answer for answer in mine[1:]}
        for create in creates:
            assert shape_differences(create["body"], mine[0]) == [], operation
            for _since, poll in cassette.polls.get(create["body"]["data"]["task_id"], []):
                state = poll["body"]["data"].get("state")
                if state in by_state:
                    assert shape_differences(poll["body"], by_state[state]) == [], (operation, state)
                    checked.add(state)
    assert 1 in checked  # the done answer, its result's fields, at least (processing ones when both saw them)


def test_a_field_missing_or_of_another_type_is_named_by_its_path():
    recorded = {"status": 200, "data": {"task_id": "t", "state": 1, "image": "https://x", "sizes": [{"w": 1}]}}
    answered = {"status": "200", "data": {"task_id": "t", "state": 1, "sizes": [{"w": "1"}], "extra": True}}
    assert shape_differences(recorded, answered) == [
        "$.status: number in the recording, string here",
        "$.data.image: missing (string in the recording)",
        "$.data.sizes[0].w: number in the recording, string here",
    ]
