"""What each step's result says to CloudWatch: counts once per job part (so sums are totals), the create queue in
seconds, how a job ended and, for a result, the task's time at the API and the overhead after it."""

from picwish_pipeline import metrics
from picwish_pipeline.create import create_step
from picwish_pipeline.failures import record_failure_step
from picwish_pipeline.finalize import finalize_step
from picwish_pipeline.metrics import Measure
from picwish_pipeline.poll import poll_step
from tests.support.fake_services import NOW, OUTPUT_BUCKET, Fakes, step_input
from tests.support.images import photo


def test_a_waiting_create_reports_how_far_ahead_its_slot_is_and_nothing_else():
    fakes = Fakes()
    fakes.limiter.queued_s = 30
    waiting = create_step(fakes.svc, step_input("state-create.json")).to_dict()
    assert metrics.of_create(waiting) == [Measure(metrics.CREATE_WAIT_S, 29, "Seconds")]
    fakes.limiter.queued_s = 0
    fakes.api.answers = ["task-1"]
    created = create_step(fakes.svc, step_input("state-create.json")).to_dict()
    assert metrics.of_create(created) == []  # counted when polling ends, with the polls


def test_a_poll_reports_the_jobs_calls_only_when_polling_ends():
    fakes = Fakes()
    created = {"status": "created", "task_id": "t", "created_at": NOW - 4, "deadline_at": NOW + 200, "api_calls": 2}
    fakes.api.answers = [{"state": 4, "progress": 40}]
    running = poll_step(fakes.svc, step_input("state-poll.json", create=created)).to_dict()
    assert metrics.of_poll(running) == []
    fakes.now = running["slot_at"]
    fakes.api.answers = [{"state": 1, "progress": 100, "image": "https://r.test/x.jpg"}]
    done = poll_step(fakes.svc, step_input("state-poll.json", create=created, poll=running)).to_dict()
    assert metrics.of_poll(done) == [Measure("api_calls", 4), Measure("throttles", 0), Measure("polls", 2)]


def test_a_result_reports_its_processing_time_and_overhead_and_a_failure_its_reason(monkeypatch):
    fakes = Fakes(now=1795000006.5)  # the API said done at 1795000004
    fakes.s3.put(OUTPUT_BUCKET, "staging/x/image", photo(fmt="PNG"))
    finished = finalize_step(
        fakes.svc,
        step_input(
            "state-finalize.json",
            poll={
                "phase": "done",
                "state": 1,
                "completed_at": 1795000004,
                "task_created_at": 1795000000,
                "outputs": {"image": {"key": "staging/x/image"}},
            },
        ),
    )
    assert metrics.of_outcome(finished.to_dict()) == [
        Measure("results", 1),
        Measure("processing_s", 4.0, "Seconds"),
        Measure("overhead_s", 2.5, "Seconds"),
    ]
    failed = record_failure_step(fakes.svc, step_input("state-record-failure-timeout.json")).to_dict()
    assert metrics.of_outcome(failed) == [Measure("failure_records", 1, dimensions=(("reason", "timeout"),))]


def test_submit_reports_its_counts():
    assert metrics.of_submit({"started": 2, "duplicate": 0, "rejected": 1, "ignored": 4}) == [
        Measure("started", 2),
        Measure("rejected", 1),
    ]
