"""The poll timing's replay (`bench.simulate`): it runs the layer's planning and slot table on the mock's
progress model, on a virtual clock, keeps the API's QPS, and finds every task done."""

import itertools
import math
import random

import pytest

from bench.simulate import TRANSITION_S, Simulation, simulate
from bench.slot_memory import MemorySlotTable
from bench.workload import Upload, plan
from picwish_pipeline.create import CREATE_LANE_GAP
from picwish_pipeline.scheduler.belief import Durations
from picwish_pipeline.scheduler.plan import FIRST_IDLE_QUANTILE
from picwish_visual.catalog import OPERATIONS

MIX = {"idphoto": 1.0, "inpaint": 1.0, "correction": 1.0}


def upload(processing_s: float, i: int = 0, at_s: float = 0.0) -> Upload:
    return Upload(f"incoming/idphoto/{i}.jpg", b"", "idphoto", processing_s, progress_curve=1.0, at_s=at_s)


def test_a_lone_task_is_polled_as_the_layer_plans_and_found_done_soon_after_its_end(rate_table):
    sim = Simulation([upload(6.0)], qps=2, client=rate_table)
    sim.run()
    job = sim.jobs[0]
    create, *polls = sim.calls
    assert create == job.created_at and len(polls) == job.polls
    # The job's trace says the same. With nothing else reserved, each poll goes at the moment planned, or at the
    # next slot's start when that moment falls late in its slot: never more than half a slot after it.
    traced = [(what, moment) for what, _, moment in job.trace]
    assert [moment for what, moment in traced if what == "call"] == sim.calls
    planned = [moment for what, moment in traced if what == "planned"]
    assert [moment for what, moment in traced if what == "slot"] == polls
    assert all(0 <= slot - plan <= sim.limiter.spacing / 2 for plan, slot in zip(planned, polls, strict=True))
    assert "displaced" not in {what for what, _ in traced}
    # the first poll at the 5th percentile of the catalog's guess (idphoto: 2 s), inside its slot: an idle budget
    first = Durations.prior(OPERATIONS["idphoto"].typical_processing_s).quantile(FIRST_IDLE_QUANTILE)
    assert polls[0] - create == pytest.approx(first, abs=0.01)
    # then readings no closer than 0.5 s and no further apart than 1 s (an idle budget's gaps), or the start of the
    # next slot when the moment aimed at falls late in one
    assert all(0.5 <= b - a <= 1.0 + sim.limiter.spacing for a, b in itertools.pairwise(polls))
    assert polls[-1] >= create + 6.0 > polls[-2] and 0 <= job.lag < 0.5


def test_a_burst_s_creates_take_their_places_in_the_lane(rate_table):
    sim = Simulation([upload(3.0, i) for i in range(6)], qps=2, client=rate_table)
    sim.run()
    created = sorted(job.created_at for job in sim.jobs)
    # a place every 2.1 slots, each create in the first slot at or after its place, called at its slot or, when
    # the step woke after it, as soon as it woke
    gaps = [b - a for a, b in itertools.pairwise(created)]
    assert min(gaps) >= 2 * sim.limiter.spacing - TRANSITION_S
    assert created[-1] - created[0] >= math.floor(CREATE_LANE_GAP * 5) * sim.limiter.spacing - TRANSITION_S
    assert all(job.lag is not None and job.lag >= 0 for job in sim.jobs)


def test_a_trickle_keeps_the_qps_finds_every_task_done_and_replays_the_same():
    uploads = plan(30, MIX, random.Random(5), scenario="trickle", interval_s=2.0, small=True, images=False)
    first, again = simulate(uploads), simulate(uploads)
    assert first == again
    assert first["tasks"] == 30 and first["over_qps"] == 0
    # every task found done by a poll of its own, none before its end
    assert all(lag >= 0 for lag in first["lags_s"]) and first["polls_per_image"] >= 1


def test_the_share_of_the_budget_used_grows_with_the_arrival_rate_and_never_passes_the_qps():
    def used(interval_s: float) -> float:
        uploads = plan(30, MIX, random.Random(7), scenario="trickle", interval_s=interval_s, small=True, images=False)
        return simulate(uploads)["budget_used"]

    # An upload every 8 s leaves most slots idle, even with an idle budget's readings; one every 2 s takes nearly
    # all of them, up to the slots' 97 % of the QPS (a call may go inside its slot: a little over it at most)
    sparse, crowded = used(8.0), used(2.0)
    assert 0.1 < sparse < 0.5
    assert 0.8 < crowded <= 1.0


def test_the_in_memory_slot_table_answers_every_request_as_moto_does():
    """The replay's default table (`bench.slot_memory`) against moto's DynamoDB: the same burst and trickle give
    the same report to the last digit (every slot, every call time, every lag)."""
    burst = plan(30, MIX, random.Random(3), scenario="burst", interval_s=2.0, small=True, images=False)
    trickle = plan(30, MIX, random.Random(4), scenario="trickle", interval_s=1.0, small=True, images=False)
    for uploads in (burst, trickle):
        in_memory, on_moto = simulate(uploads, table="memory"), simulate(uploads, table="moto")
        assert in_memory.pop("slot_table_requests_per_image") > 0
        assert on_moto.pop("slot_table_requests_per_image") is None  # moto's client does not count
        assert in_memory == on_moto


def test_a_queue_past_the_horizon_is_handed_over_and_no_execution_outlives_the_timeout():
    uploads = plan(100, MIX, random.Random(6), scenario="burst", interval_s=2.0, small=True, images=False)
    sim = Simulation(uploads, qps=2, client=MemorySlotTable(), machine_timeout_s=330, job_life_s=300)
    sim.run()
    report = sim.report()
    assert (report["ended"], report["timed_out"]) == (100, 0)
    assert report["handed_over"] > 50  # the lane runs ~105 s: every create past the 30 s horizon hands over
    assert max(job.handovers for job in sim.jobs) >= 3
    assert sorted(c for c in sim.calls if c in {j.created_at for j in sim.jobs}) == sorted(
        j.created_at for j in sim.jobs
    )


def test_a_drop_s_cost_per_image_does_not_grow_with_its_size():
    def drop(n: int) -> dict:
        uploads = plan(n, MIX, random.Random(8), scenario="burst", interval_s=2.0, small=True, images=False)
        return simulate(uploads, qps=2)

    small, large = drop(300), drop(3000)
    for figure in ("transitions_per_image", "invocations_per_image", "slot_table_requests_per_image"):
        assert abs(large[figure] / small[figure] - 1) <= 0.1, (figure, small[figure], large[figure])
    assert large["ended"] == 3000 and large["timed_out"] == 0
    assert large["sustained_vs_qps_half"] >= 0.9
