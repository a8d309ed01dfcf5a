"""The tally `picwish-ops status` reads: what each step adds (on fake services), and how it is read back."""

import pytest

from picwish_pipeline import tally
from picwish_pipeline.create import create_step
from picwish_pipeline.failures import record_failure_step
from picwish_pipeline.submit import submit_event
from picwish_visual.catalog import get_operation
from tests.support.fake_services import NOW, Fakes, event, step_input
from tests.unit.test_submit_step import ME, uploaded

HOUR = tally.hour_key(NOW)


@pytest.fixture
def fakes():
    return Fakes()


def test_a_job_s_first_create_counts_it_started_and_its_task_created_with_the_credits(fakes):
    fakes.api.answers = ["task-1"]
    create_step(fakes.svc, step_input("state-create.json"))
    counts = {"started": 1, "created": 1, "credits": get_operation("idphoto").credits}
    assert fakes.tasks.tally == {tally.TOTAL: counts, HOUR: counts}


def test_a_create_that_waits_for_its_slot_counts_nothing_more(fakes):
    fakes.limiter.queued_s = 30
    create_step(fakes.svc, step_input("state-create.json", create={"status": "wait", "slot_at": NOW + 30}))
    assert fakes.tasks.tally == {}


def test_a_failed_job_counts_its_end_its_reason_its_task_and_what_it_spent(fakes):
    record_failure_step(fakes.svc, step_input("state-record-failure-timeout.json"))
    counts = {"ended": 1, "outcome#failed": 1, "reason#timeout": 1, "ended_created": 1, "api_calls": 13, "http_429": 0}
    assert fakes.tasks.tally[tally.TOTAL] == counts


def test_an_upload_submit_refuses_counts_as_refused_never_in_flight(fakes):
    uploaded(fakes, "s3-put-idphoto.json", ME, b"not an image")
    submit_event(fakes.svc, event("s3-put-idphoto.json"))
    assert fakes.tasks.tally[tally.TOTAL] == {"refused": 1, "reason#invalid input": 1}


class Items:
    """batch_get_item over a dict, at most 100 keys a call, the rest answered as unprocessed once."""

    def __init__(self, items):
        self.items, self.calls = items, []

    def batch_get_item(self, RequestItems):
        [(table, request)] = RequestItems.items()
        keys = [k["execution"]["S"] for k in request["Keys"]]
        assert len(keys) <= 100
        self.calls.append(len(keys))
        answered, unprocessed = keys[:60], keys[60:]
        found = [
            {"execution": {"S": k}, "expires_at": {"N": "1"}, **{n: {"N": str(v)} for n, v in self.items[k].items()}}
            for k in answered
            if k in self.items
        ]
        rest = {table: {"Keys": [{"execution": {"S": k}} for k in unprocessed]}} if unprocessed else {}
        return {"Responses": {table: found}, "UnprocessedKeys": rest}


def test_the_tally_reads_all_time_and_sums_the_hours_of_the_window():
    now = NOW
    items = {
        tally.TOTAL: {"started": 9, "ended": 4},
        tally.hour_key(now): {"ended": 1, "outcome#succeeded": 1},
        tally.hour_key(now - 3600 * 5): {"ended": 2, "outcome#failed": 2},
        tally.hour_key(now - 3600 * 30): {"ended": 1, "outcome#succeeded": 1},  # before the window
    }
    source = Items(items)
    total, window = tally.read(source, "tasks", since=now - 24 * 3600, now=now)
    assert total == {"started": 9, "ended": 4}
    assert window == {"ended": 3, "outcome#succeeded": 1, "outcome#failed": 2}
    assert sum(source.calls) > 25  # every hour asked for, unprocessed keys asked again
