"""The late-deciding dispatcher's bound (`bench.dispatch_bound`): it keeps the API's rolling window, serves the
calls in the order it says, and counts what a user waits as well as the detection lag."""

import itertools
import random

import pytest

from bench.dispatch_bound import Dispatcher, _Want, report
from bench.simulate import ANSWER_S, EPOCH, SUBMIT_S, Job
from bench.workload import Upload, plan
from picwish_pipeline.scheduler.belief import Durations
from picwish_pipeline.scheduler.plan import FIRST_IDLE_QUANTILE
from picwish_pipeline.scheduler.slot_table import SlotLimiter
from picwish_visual.catalog import OPERATIONS

MIX = {"idphoto": 1.0, "inpaint": 1.0, "correction": 1.0}


def upload(processing_s: float, i: int = 0, at_s: float = 0.0) -> Upload:
    return Upload(f"incoming/idphoto/{i}.jpg", b"", "idphoto", processing_s, progress_curve=1.0, at_s=at_s)


def test_a_lone_task_is_created_at_once_and_polled_at_the_moments_the_layer_plans():
    dispatcher = Dispatcher([upload(6.0)])
    (job,) = dispatcher.run()
    create, *polls = dispatcher.calls
    assert create == EPOCH + SUBMIT_S and len(polls) == job.polls
    first = Durations.prior(OPERATIONS["idphoto"].typical_processing_s).quantile(FIRST_IDLE_QUANTILE)
    assert polls[0] - create == pytest.approx(first)
    # nothing else wants the budget: each reading at the moment planned, from the answer before it (ANSWER_S after
    # its call) at least the idle budget's 0.5 s and at most 1 s or a quarter of the task's age
    for a, b in itertools.pairwise(polls):
        assert 0.5 - 1e-6 <= b - (a + ANSWER_S) <= max(1.0, (a + ANSWER_S - create) / 4) + 1e-6
    assert polls[-1] >= create + 6.0 > polls[-2]
    (lag,) = report([job])["lags_s"]
    assert 0 <= lag < 1.0


def test_a_moment_goes_to_a_poll_expected_to_find_its_task_done_then_a_create_then_a_reading():
    job = Job(upload(3.0))
    reading = _Want(9.0, job, False, spare_until=20.0)  # wanted first, but its task is not expected done before 20
    create = _Want(9.5, job, True)
    aimed = _Want(9.8, job, False, spare_until=9.8)  # its task expected done from 9.8 on
    stale = _Want(9.2, job, False, spare_until=9.9)  # a reading until 9.9
    wants = [reading, create, aimed, stale]
    assert sorted(wants, key=lambda w: w.rank(10.0, False)) == [stale, aimed, create, reading]
    # before 9.9 the stale one is still a reading: readings by the moment wanted
    assert sorted(wants, key=lambda w: w.rank(9.85, False)) == [aimed, create, reading, stale]
    assert sorted(wants, key=lambda w: w.rank(9.85, True)) == [aimed, reading, stale, create]


def test_a_crowded_trickle_keeps_the_rolling_window_and_finds_every_task_done():
    uploads = plan(30, MIX, random.Random(5), scenario="trickle", interval_s=1.0, small=True, images=False)
    dispatcher = Dispatcher(uploads)
    jobs = dispatcher.run()
    # in time order, and no three calls within a second and the margin: the API's rule for QPS 2, as the slot
    # table keeps it (to float precision at a Unix time's magnitude)
    calls = dispatcher.calls
    assert calls == sorted(calls)
    assert all(c - a >= 1 + SlotLimiter.margin_s - 1e-6 for a, c in zip(calls[:-2], calls[2:], strict=True))
    figures = report(jobs)
    assert figures["tasks"] == 30 and all(lag >= 0 for lag in figures["lags_s"])


def test_creates_served_last_wait_longer_and_the_user_waits_longer_for_it():
    uploads = plan(40, MIX, random.Random(3), scenario="trickle", interval_s=2.0, small=True, images=False)
    today = report(Dispatcher(uploads).run())
    last = report(Dispatcher(uploads, creates_last=True).run())
    # The order is the only difference: creates behind readings wait for them, and a user's upload waits longer to
    # be seen done, whatever the detection lag does.
    assert last["create_wait_p95_s"] > today["create_wait_p95_s"] + 1.0
    assert last["upload_to_done_p50_s"] > today["upload_to_done_p50_s"]
