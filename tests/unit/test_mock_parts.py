"""The mock's parts on their own: a task's progression (by time, by polls, scripted, past the 180 s limit, its
progress curve or points) and
the result store's links (alive, expired, unknown)."""

import pytest

from mock_server.config import MockConfig
from mock_server.exceptions import AdminError
from mock_server.forms import CreateRequest
from mock_server.imaging import OutputFile
from mock_server.progression import Progression, Task
from mock_server.result_store import ResultStore
from mock_server.scenarios import Outcome, outcome_from_mapping, parse_progress_points
from picwish_visual.catalog import get_operation


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def task(processing_s: float, outcome: Outcome | None = None, operation: str = "idphoto") -> Task:
    op = get_operation(operation)
    request = CreateRequest(operation=op, sync=False, options={})
    return Task("t", "k", op, request, outcome or Outcome(), created=1000.0, processing_s=processing_s)


def looks(progression: Progression, t: Task, clock: Clock, times: list[float]) -> list[tuple]:
    seen = []
    for at in times:
        clock.now = 1000.0 + at
        step = progression.look(t)
        seen.append((step.state, step.progress, step.terminal))
    return seen


def test_by_time_a_task_passes_each_documented_state_and_its_progress_follows_its_curve():
    clock = Clock()
    progression = Progression(MockConfig(), clock)
    t = task(5.0, Outcome(progress_curve=2.0))
    assert looks(progression, t, clock, [0.5, 1.5, 2.5, 3.5, 4.5, 5.0]) == [
        (0, 0, False),  # queued: no progress yet
        (2, 9, False),  # (1.5 / 5)² = 9 %
        (3, 25, False),
        (4, 48, False),  # whole percents, rounded down
        (5, 81, False),
        (1, 100, True),
    ]


def test_progress_points_make_plateaus_and_jumps_from_the_first_look_and_hold_after_the_last_point():
    clock = Clock()
    progression = Progression(MockConfig(), clock)
    # 10 s: up to 40 % by 2 s, stalled at 40 % until 6 s, a jump to 90 % by 7 s, then held until done
    t = task(10.0, Outcome(progress_points=[(0.2, 40), (0.6, 40), (0.7, 90)]))
    assert looks(progression, t, clock, [1.0, 1.9, 4.0, 6.5, 8.0, 9.99, 10.0]) == [
        (0, 20, False),  # the points speak in state 0 too: a real API may report progress while queued
        (0, 38, False),
        (3, 40, False),
        (4, 65, False),
        (5, 90, False),
        (5, 90, False),
        (1, 100, True),
    ]


def test_progress_points_must_rise_in_time_never_fall_and_stay_below_100():
    assert parse_progress_points("0.2:0|0.5:80|0.9:85") == [(0.2, 0.0), (0.5, 80.0), (0.9, 85.0)]
    assert parse_progress_points([[0.5, 10], [1, 99]]) == [(0.5, 10.0), (1.0, 99.0)]
    for bad in ("0.5:80|0.4:90", "0.5:80|0.6:70", "0:5", "0.5:100", "1.5:10", "0.5", "", "nan:5", "0.5:x"):
        with pytest.raises(AdminError, match=r"^progress_points: .* is not valid$"):
            outcome_from_mapping({"progress_points": bad})


def test_a_task_past_the_180_s_limit_ends_in_minus_8_at_the_limit():
    clock = Clock()
    progression = Progression(MockConfig(time_scale=0.1), clock)
    t = task(30.0)  # 300 s before scaling: over the limit
    assert looks(progression, t, clock, [17.9, 18.0]) == [(5, 99, False), (-8, 99, True)]
    progression.end(t, -8)
    assert (t.final_state, t.completed) == (-8, 1018.0)


def test_by_polls_and_by_script_the_nth_look_decides():
    clock = Clock()
    progression = Progression(MockConfig(), clock)
    t = task(5.0, Outcome(polls=3, script=[2, 4, -3]))
    seen = []
    for _ in range(3):
        t.polls += 1
        step = progression.look(t)
        seen.append((step.state, step.terminal))
    assert seen == [(2, False), (4, False), (-3, True)]


def test_a_result_link_lives_until_its_expiry_and_an_expired_one_is_still_known():
    clock = Clock()
    store = ResultStore(clock)
    [(name, token)] = store.put([OutputFile("image", "image.png", b"png", "image/png")], ttl_s=3600)
    assert name == "image" and store.fetch(token).data == b"png"
    clock.now += 3601
    assert store.fetch(token) is None and store.stored(token).filename == "image.png"
    assert store.fetch("never-issued") is None and store.stored("never-issued") is None
