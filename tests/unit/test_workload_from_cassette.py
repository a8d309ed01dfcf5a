"""The benchmark's tasks from a cassette (`python -m bench --workload DIR`): each operation's recorded times and
progress curves, read from the exchanges as the recorder writes them."""

import random

from bench.workload import Recorded, plan, recorded_tasks
from mock_server.cassette import Cassette


def _exchange(method: str, path: str, sent: float, data: dict) -> dict:
    body = {"status": 200, "data": data}
    return {
        "method": method,
        "path": path,
        "sent": sent,
        "answered": sent + 0.1,
        "status": 200,
        "headers": {},
        "body": body,
    }


def _session() -> Cassette:
    create, poll = "/api/tasks/visual/idphoto", "/api/tasks/visual/idphoto/t1"
    return Cassette(
        [
            _exchange("POST", create, 0.0, {"task_id": "t1"}),
            _exchange("GET", poll, 1.1, {"state": 0, "progress": 0}),
            _exchange("GET", poll, 2.1, {"state": 0, "progress": 40}),
            _exchange("GET", poll, 3.1, {"state": 0, "progress": 30}),  # the API's progress may step back
            _exchange("GET", poll, 4.1, {"state": 1, "progress": 100}),
            _exchange("POST", "/api/tasks/visual/correction", 5.0, {"task_id": "t2"}),
            _exchange("GET", "/api/tasks/visual/correction/t2", 6.0, {"state": -1}),  # failed: no time to learn
        ]
    )


def test_a_recorded_task_is_its_time_to_done_and_its_rising_progress():
    assert recorded_tasks(_session()) == {"idphoto": [Recorded(4.0, [(0.25, 0.0), (0.5, 40.0), (0.75, 40.0)])]}


def test_the_benchmark_s_tasks_take_the_recorded_ones_and_other_operations_keep_their_own():
    recorded = recorded_tasks(_session())
    mix = {"idphoto": 1.0, "correction": 1.0}
    uploads = plan(20, mix, random.Random(1), scenario="burst", interval_s=1.0, images=False, recorded=recorded)
    mine = [u for u in uploads if u.operation == "idphoto"]
    assert mine and all((u.processing_s, u.progress_shape) == (4.0, "recorded") for u in mine)
    assert mine[0].progress_points == [(0.25, 0.0), (0.5, 40.0), (0.75, 40.0)]
    others = [u for u in uploads if u.operation == "correction"]
    assert others and all(u.progress_shape != "recorded" for u in others)
    unrecorded = plan(20, mix, random.Random(1), scenario="burst", interval_s=1.0, images=False)
    assert [u.at_s for u in unrecorded] == [u.at_s for u in uploads]  # the same arrivals either way
