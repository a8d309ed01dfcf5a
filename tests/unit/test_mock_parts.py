"""The mock's parts on their own: a task's progression (by time, by polls, scripted, past the 180 s limit) and
the result store's links (alive, expired, unknown)."""

from mock_server.config import MockConfig
from mock_server.forms import CreateRequest
from mock_server.imaging import OutputFile
from mock_server.progression import Progression, Task
from mock_server.result_store import ResultStore
from mock_server.scenarios import Outcome
from picwish.catalog import get_operation


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
