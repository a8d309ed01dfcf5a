"""Where the create and poll steps put their calls: a burst of creates waits once each, never more calls than the
QPS, polls that follow the task's progress, and first polls that learn what recent tasks took. Steps run against
DynamoDB (moto, in process) on a simulated clock; the API answers through a fake client."""

import heapq
import itertools
import json
from pathlib import Path

import pytest

from offline.moto_atomic import make_moto_atomic
from picwish_pipeline import create, poll, storage
from picwish_pipeline.config import PipelineSettings
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.scheduler import plan
from picwish_pipeline.services import Services
from picwish_visual.results import TaskResult
from tests.support.fake_services import FakeS3

make_moto_atomic()

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def tables(rate_table):
    rate_table.create_table(
        TableName="tasks",
        KeySchema=[{"AttributeName": "execution", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "execution", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return rate_table


class FakeApi:
    """Answers creates with a new task id and polls from a script of `data` objects; remembers when each call
    was made by the simulated clock."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, str]] = []
        self.answers: dict[str, list[dict]] = {}
        self.ids = itertools.count(1)

    def create_task(self, operation, image, options, **masks):
        task_id = f"t{next(self.ids):04d}"
        self.calls.append((self.clock(), "create", task_id))
        return TaskResult(operation=operation, task_id=task_id)

    def get_task(self, operation, task_id):
        self.calls.append((self.clock(), "poll", task_id))
        data = self.answers[task_id].pop(0)
        return TaskResult.from_data(operation, {"task_id": task_id, **data})


class Sim:
    """A simulated clock for steps: a step runs at the moment it wakes, and its short sleeps before its slot move
    the clock on (steps run one at a time, each from its own wake-up time)."""

    def __init__(self, tables, now: float = 1_000_000.0) -> None:
        self.now = now
        self.api = FakeApi(lambda: self.now)
        api = self.api
        settings = PipelineSettings(rate_table="slots", tasks_table="tasks", qps=2)

        class SimServices(Services):
            def client(self, *, refresh: bool = False):
                return api

        # The upload every simulated job is, as its key's current version (creates check it is still the newest).
        s3 = FakeS3()
        upload = json.loads((EVENTS / "state-create.json").read_text())["job"]["upload"]
        s3.put(upload["bucket"], upload["key"], b"uploaded bytes", version_id=upload["version_id"])
        self.svc = SimServices(settings=settings, s3=s3, dynamodb=tables, clock=self.clock, sleep=self.sleep)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_create(svc, payload: dict) -> dict:
    """The create step as its Lambda runs it: a dict in, a dict out."""
    return create.create_step(svc, StepInput.from_dict(payload)).to_dict()


def run_poll(svc, payload: dict) -> dict:
    return poll.poll_step(svc, StepInput.from_dict(payload)).to_dict()


def job_payload(name: str, operation: str = "idphoto") -> dict:
    state = json.loads((EVENTS / "state-create.json").read_text())
    return {**state, "job": {**state["job"], "operation": operation}, "execution": name}


def running_task(sim, name: str) -> tuple[dict, float]:
    """A poll step's payload for task "t1", created now."""
    payload = job_payload(name)
    payload["create"] = {"status": "created", "task_id": "t1", "created_at": sim.now, "deadline_at": sim.now + 240}
    return payload, sim.now


@pytest.fixture
def sim(tables, monkeypatch):
    monkeypatch.setattr(create, "_api_inputs", lambda svc, job: ("image-url", {}))
    return Sim(tables)


def test_every_create_of_a_burst_waits_once_and_the_creates_never_pass_the_qps(sim):
    n = 120
    payloads = {f"exec-{i:03d}": job_payload(f"exec-{i:03d}") for i in range(n)}
    waits = dict.fromkeys(payloads, 0)
    queue = [(sim.now, name) for name in payloads]  # all uploaded at once
    heapq.heapify(queue)
    while queue:
        sim.now, name = heapq.heappop(queue)
        out = run_create(sim.svc, payloads[name])
        payloads[name]["create"] = out
        if out["status"] == "wait":
            waits[name] += 1
            heapq.heappush(queue, (sim.now + max(out["wait_s"], 0.01), name))
        else:
            assert out["status"] == "created", out
    assert max(waits.values()) == 1  # the last of 120 waited about two minutes, in one Wait
    times = sorted(t for t, kind, _ in sim.api.calls if kind == "create")
    assert len(times) == n
    assert all(b - a > 0.999 for a, b in zip(times, times[2:], strict=False))  # never 3 calls in a second
    # About 1.1 slots of every 2.1 are left for polls.
    spacing = sim.svc.limiter().spacing
    assert times[-1] - times[0] == pytest.approx((n - 1) * create.CREATE_LANE_GAP * spacing, rel=0.03)


@pytest.mark.parametrize("busy", [False, True])
def test_a_poll_that_sees_progress_comes_back_when_the_task_should_be_done(sim, busy):
    if busy:
        for _ in range(20):  # creates queued for the next 20 s
            sim.svc.limiter().reserve_create(2)
    payload, created_at = running_task(sim, "exec-p")
    sim.now = created_at + 2.0
    sim.api.answers["t1"] = [{"state": 4, "progress": 40}]
    out = run_poll(sim.svc, payload)
    assert out["phase"] == "processing" and out["progress"] == 40
    # 40 % after t: done at about 2.5 t, not one poll interval (1 s) later. An idle budget reads the progress
    # again half-way; a busy one goes to the end, padded.
    polled = sim.api.calls[-1][0] - created_at  # the poll went out at its slot, a little after 2 s
    end = polled / 0.405
    # a young task with one reading is looked at again before it has run three times as long (under a backlog)
    expected = min(end * 1.15, 3 * polled) if busy else polled + (end - polled) / 2
    assert out["slot_at"] - created_at == pytest.approx(expected, abs=0.6)


def test_a_poll_without_progress_waits_for_where_most_tasks_that_ran_this_long_are_done(sim):
    payload, created_at = running_task(sim, "exec-q")
    sim.now = created_at + 9.0  # idphoto typically takes 3 s; this one is queued still
    sim.api.answers["t1"] = [{"state": 0, "progress": 0}]
    out = run_poll(sim.svc, payload)
    assert 9.5 <= out["slot_at"] - created_at <= 15


def complete(sim, name: str, task_seconds: float) -> None:
    """Create a task and poll it until done; the API's whole-second stamps say it took `task_seconds`."""
    payload = job_payload(name)
    payload["create"] = run_create(sim.svc, payload)
    while payload["create"]["status"] == "wait":
        sim.now += payload["create"]["wait_s"] + 0.1
        payload["create"] = run_create(sim.svc, payload)
    created = payload["create"]
    sim.now = max(sim.now, created["slot_at"], created["created_at"] + task_seconds + 0.3)
    stamp = int(created["created_at"])
    sim.api.answers[created["task_id"]] = [
        {
            "state": 1,
            "progress": 100,
            "created_at": stamp,
            "completed_at": stamp + round(task_seconds),
            "image": "https://r.test/x.png",
        }
    ]
    out = run_poll(sim.svc, payload)
    assert out["phase"] == "done", out


def test_the_first_poll_learns_from_recent_tasks_of_the_operation(sim, monkeypatch):
    monkeypatch.setattr(storage, "stash_outputs", lambda *args: {})
    first = run_create(sim.svc, job_payload("exec-a"))
    guessed = first["slot_at"] - first["created_at"]  # before any task: the catalog's guess (3 s for idphoto)
    for i in range(12):  # idphoto tasks have been taking 9 s
        sim.now += 20
        complete(sim, f"exec-l{i}", 9.0)
    sim.now += 20
    learned = run_create(sim.svc, job_payload("exec-b"))
    belief = sim.svc.limiter().schedule().durations_of("idphoto", 3.0)
    assert belief.quantile(0.5) == pytest.approx(9.0, abs=1.0)
    # The first poll is early when the budget is idle (to read the progress): early for a 9 s task, not a 3 s one.
    assert guessed < 3 and learned["slot_at"] - learned["created_at"] == pytest.approx(
        belief.quantile(plan.FIRST_IDLE_QUANTILE), abs=0.6
    )


def test_a_sample_that_cannot_be_stored_does_not_cost_the_done_task_a_poll(sim, monkeypatch):
    from botocore.exceptions import ClientError

    from picwish_pipeline.scheduler.slot_table import SlotLimiter

    def refuse(self, operation, durations):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    monkeypatch.setattr(SlotLimiter, "learn", refuse)
    monkeypatch.setattr(storage, "stash_outputs", lambda *args: {})
    complete(sim, "exec-x", 4.0)  # asserts the poll came back done
    assert [kind for _, kind, _ in sim.api.calls] == ["create", "poll"]
