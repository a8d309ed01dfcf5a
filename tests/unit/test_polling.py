"""The poll-timing rules: quantiles of what tasks took, progress-based predictions, busy against idle budgets,
and completion samples placed inside the window the polls saw."""

import math
import random

import pytest

from picwish_pipeline.scheduler import belief, plan
from picwish_pipeline.scheduler.belief import Durations


def test_learning_converges_on_the_recent_median_and_spread():
    d = Durations.prior(2.0)
    rng = random.Random(3)
    for _ in range(200):
        d = d.learn(math.exp(rng.gauss(math.log(7.0), 0.4)))
    assert d.quantile(0.5) == pytest.approx(7.0, rel=0.25)
    assert 0.2 < d.sigma < 0.6
    assert d.samples == 200


def test_a_busy_budget_polls_later_than_an_idle_one():
    d = Durations(math.log(4.0), 0.5**2)
    idle = plan.first_poll(100.0, d, busy=False)
    busy = plan.first_poll(100.0, d, busy=True)
    # early, to read the progress and to catch the fastest 5 %: a reading, which gives way to calls that cannot
    assert idle.at - 100 == pytest.approx(4.0 * math.exp(-0.5 * 1.6449), rel=0.01) and idle.spare
    assert busy.at - 100 == pytest.approx(4.0 * math.exp(0.5 * 1.4051), rel=0.01)  # where 92 % are done
    assert not busy.spare


def test_progress_predicts_the_end_and_a_busy_budget_pads_it():
    d = Durations(math.log(4.0), 0.5**2)
    end = 3.0 * 100 / 60.5
    idle = plan.next_poll(0.0, 3.0, 60, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).at
    idle_again = plan.next_poll(0.0, 3.0, 60, d, busy=False, min_gap_s=0.5, max_gap_s=3.0, earlier=(1.5, 30)).at
    busy = plan.next_poll(0.0, 3.0, 60, d, busy=True, min_gap_s=1.0).at
    assert idle == pytest.approx(3.0 + (end - 3.0) / 2 + plan.ARRIVAL_MARGIN_S)  # a second reading half-way
    assert idle_again == pytest.approx(end + plan.ARRIVAL_MARGIN_S)  # then the end itself
    assert busy == pytest.approx(end * 1.15 + plan.ARRIVAL_MARGIN_S)


def test_a_poll_never_comes_sooner_than_the_minimum_gap():
    d = Durations(math.log(4.0), 0.5**2)
    at = plan.next_poll(0.0, 3.9, 99, d, busy=False, min_gap_s=0.5).at
    assert at == pytest.approx(3.9 + 0.5 + plan.ARRIVAL_MARGIN_S)


def test_a_task_past_every_estimate_is_polled_where_the_tail_says():
    d = Durations(math.log(2.0), 0.3**2)
    at = plan.next_poll(0.0, 30.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).at
    assert 30.5 <= at < 40  # a lognormal says such a task never ends; it does, soon after


@pytest.mark.parametrize(
    ("last_running", "seen_done", "api", "expected"),
    [
        (4.0, 6.0, (1000, 1005), 5.0),  # the API's stamps place it inside the window
        (4.0, 6.0, (1000, 1009), 6.0),  # they cannot push it past the poll that saw it done
        (4.0, 6.0, (1000, 1001), 4.0),  # nor before the poll that saw it running
        (None, 6.0, None, 3.0),  # no stamps, no earlier poll: the middle of create → done
    ],
)
def test_a_completion_sample_lies_between_the_polls(last_running, seen_done, api, expected):
    created_at = 0.0
    api_created, api_completed = api or (None, None)
    got = belief.completion_sample(created_at, last_running, seen_done, api_created, api_completed)
    assert got == pytest.approx(expected)


def test_durations_survive_the_table_round_trip():
    d = Durations(1.25, 0.09, 7)
    assert Durations.from_item(d.to_item(), 3.0) == d
    assert Durations.from_item(None, 3.0) == Durations.prior(3.0)


def test_an_idle_budget_never_leaves_a_task_alone_longer_than_the_max_gap_or_a_quarter_of_its_age():
    d = Durations(math.log(60.0), 0.3**2)  # the belief says a minute
    assert plan.next_poll(0.0, 2.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).at == pytest.approx(4.0)
    assert 40.5 <= plan.next_poll(0.0, 40.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).at <= 50.0
    assert plan.next_poll(0.0, 2.0, 0, d, busy=True, min_gap_s=1.0, max_gap_s=2.0).at == pytest.approx(6.0)
    assert plan.next_poll(0.0, 20.0, 0, d, busy=True, min_gap_s=1.0, max_gap_s=2.0).at > 30  # busy: no 2 s cap


@pytest.mark.parametrize("k", [0.6, 1.0, 1.7])
def test_two_readings_find_the_end_of_a_task_whose_progress_speeds_up_or_slows_down(k):
    total = 10.0

    def progress(t):
        return int(100 * (t / total) ** k)

    one = plan.predicted_total(6.0, progress(6.0))
    two = plan.predicted_total(6.0, progress(6.0), earlier=(3.0, progress(3.0)))
    assert two == pytest.approx(total, rel=0.06)
    if k != 1.0:
        assert abs(one - total) > 2 * abs(two - total)  # one reading takes it for proportional


def test_one_very_slow_task_does_not_push_every_first_poll_out():
    d = Durations.prior(4.0)
    rng = random.Random(5)
    for _ in range(30):
        d = d.learn(math.exp(rng.gauss(math.log(4.5), 0.45)))
    before = d.quantile(0.85)
    after = d.learn(170.0)
    assert after.quantile(0.85) < 1.6 * before  # without the cap: about 5 times
    assert after.sigma < 1.5 * d.sigma


def test_an_early_reading_never_sends_the_next_poll_past_twice_the_age_thrice_under_a_backlog_or_the_deadline():
    d = Durations(math.log(5.0), 0.5**2)
    # 170 s task whose progress starts slowly: 13 % after 40 s says about 300 s
    assert plan.next_poll(0.0, 40.0, 13, d, busy=False, min_gap_s=0.5).at == pytest.approx(80.0)
    far = plan.next_poll(0.0, 40.0, 13, d, busy=True, min_gap_s=1.0).at
    assert far == pytest.approx(120.0)  # busy: a poll saved is a create's slot
    near_deadline = plan.next_poll(0.0, 160.0, 60, d, busy=True, min_gap_s=1.0, deadline=240.0).at
    assert near_deadline == pytest.approx(240.0 - plan.DEADLINE_LEAD_S)


def test_two_readings_of_a_slow_task_under_a_backlog_send_the_next_poll_to_its_predicted_end():
    d = Durations(math.log(5.0), 0.5**2)
    # a 170 s task read at 10 s (6 %) and at 20 s (12 %): proportional, so it ends at about 170 s
    fitted = plan.next_poll(0.0, 20.0, 12, d, busy=True, min_gap_s=1.0, earlier=(10.0, 6), deadline=240.0).at
    assert fitted == pytest.approx(20.0 / 0.125 * 1.15 + plan.ARRIVAL_MARGIN_S)  # not at 40 s: polls saved
    one = plan.next_poll(0.0, 20.0, 12, d, busy=True, min_gap_s=1.0, deadline=240.0).at
    assert one == pytest.approx(60.0)  # one reading: looked at again before it has run three times as long


def test_an_idle_budget_looks_at_a_task_without_progress_less_often_as_it_ages():
    d = Durations(math.log(5.0), 0.5**2)  # the belief says 5 s; this task shows no progress after 10 s
    at = plan.next_poll(0.0, 10.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).at
    assert at == pytest.approx(12.5)  # a quarter of its age on (the cap); not every half second


def test_an_idle_budget_checks_a_prediction_from_progress_within_a_quarter_of_the_task_s_age():
    d = Durations(math.log(5.0), 0.5**2)
    # A task read at 8.76 s (79 %) and 10.82 s (81 %): the flattening curve says 20 s, and the task, whose
    # progress wobbles, ended at 12.6 s. The next look is a quarter of its age on, not half (16.2 s, 3.6 s late).
    noisy = plan.next_poll(0.0, 10.82, 81, d, busy=False, min_gap_s=0.5, max_gap_s=1.0, earlier=(8.76, 79)).at
    assert noisy == pytest.approx(10.82 + 10.82 / 4)
    one = plan.next_poll(0.0, 20.0, 33, d, busy=False, min_gap_s=0.5, max_gap_s=1.0).at
    assert one == pytest.approx(25.0)


def test_an_idle_budget_looks_at_a_stalled_task_every_max_gap_or_an_eighth_of_its_age():
    d = Durations(math.log(5.0), 0.5**2)
    # 81 % at 14.6 s and still 81 % at 18.0 s: one reading alone would say 22.1 s, and the task ended at 18.5 s
    stalled = plan.next_poll(0.0, 18.04, 81, d, busy=False, min_gap_s=0.5, max_gap_s=1.0, earlier=(14.57, 81))
    assert stalled.at == pytest.approx(18.04 + 18.04 / 8)
    young = plan.next_poll(0.0, 6.0, 81, d, busy=False, min_gap_s=0.5, max_gap_s=1.0, earlier=(4.0, 81))
    assert young.at == pytest.approx(7.0)
    # a 170 s task stalled at 40 % from 60 s on: polled every eighth of its age, not every second (43 polls)
    old = plan.next_poll(0.0, 100.0, 40, d, busy=False, min_gap_s=0.5, max_gap_s=1.0, earlier=(88.0, 40))
    assert old.at == pytest.approx(112.5)
    assert stalled.spare  # not expected to find it done: a reading, which gives way to a poll that is
    moving = plan.next_poll(0.0, 18.04, 85, d, busy=False, min_gap_s=0.5, max_gap_s=1.0, earlier=(14.57, 81))
    assert moving.at > 19.5
    busy = plan.next_poll(0.0, 18.04, 81, d, busy=True, min_gap_s=1.0, earlier=(14.57, 81))
    assert busy.at > 21  # a backlog's polls are not spent on a stall


def test_no_poll_is_planned_past_the_api_s_limit_when_every_task_has_ended():
    d = Durations(math.log(5.0), 0.5**2)
    # A 170 s task of the benchmark read at 67.5 s: 23 %, a late-rising curve. One reading says 287 s, and under a
    # backlog it was looked at again at three times its age (202.5 s), 32 s after it ended.
    for busy in (True, False):
        planned = plan.next_poll(0.0, 67.5, 23, d, busy=busy, min_gap_s=1.0, deadline=240.0, limit_s=180.0)
        assert planned.at <= 180.0 + plan.ARRIVAL_MARGIN_S
    assert plan.next_poll(0.0, 67.5, 23, d, busy=True, min_gap_s=1.0, deadline=240.0).at == pytest.approx(202.5)


def test_a_task_that_outlives_the_api_s_limit_by_our_clock_is_not_polled_every_min_gap():
    d = Durations(math.log(5.0), 0.5**2)
    # Our clock starts at the create's answer, and the API may count its limit from another moment (its queue):
    # past 180 s by our clock, the limit says nothing more, and the other caps (and the deadline) decide.
    for busy in (True, False):
        planned = plan.next_poll(
            0.0, 185.0, 95, d, busy=busy, min_gap_s=0.5, max_gap_s=1.0, earlier=(170.0, 95), limit_s=180.0
        )
        assert planned.at > 185.0 + 5, busy  # not 185.5: a poll every half second until the deadline


def test_a_busy_budget_s_plan_never_reaches_past_the_end_of_the_backlog():
    d = Durations(math.log(5.0), 0.5**2)

    # Read at 16.2 s (58 %) and 34 s (75 %): a flattening fit says 88 s; the task (progress in steps) ended at 40 s.
    def planned(**kw):
        return plan.next_poll(0.0, 34.0, 75, d, min_gap_s=1.0, earlier=(16.16, 58), deadline=240.0, **kw)

    assert planned(busy=True).at > 85
    assert planned(busy=True, backlog_ends=41.0).at == pytest.approx(41.0)  # the last create goes at 41 s
    assert planned(busy=True, backlog_ends=150.0).at == planned(busy=True).at  # mid-burst: the backlog is far
    assert planned(busy=False, max_gap_s=1.0, backlog_ends=41.0).at == pytest.approx(34 + 34 / 4)  # idle: its own caps


def test_an_idle_budget_s_readings_are_spare_and_a_poll_expected_to_find_the_task_done_is_not():
    d = Durations(math.log(4.0), 0.5**2)
    half_way = plan.next_poll(0.0, 3.0, 60, d, busy=False, min_gap_s=0.5, max_gap_s=2.0)
    aimed = plan.next_poll(0.0, 3.0, 60, d, busy=False, min_gap_s=0.5, max_gap_s=3.0, earlier=(1.5, 30))
    capped = plan.next_poll(0.0, 3.0, 20, d, busy=False, min_gap_s=0.5, max_gap_s=2.0, earlier=(1.5, 10))
    no_progress = plan.next_poll(0.0, 3.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0)
    assert half_way.spare and capped.spare and no_progress.spare
    assert capped.at == pytest.approx(5.0)  # its end is 15 s out: a reading at the 2 s cap
    assert not aimed.spare and aimed.at == pytest.approx(3.0 * 100 / 60.5 + plan.ARRIVAL_MARGIN_S)
    # One reading of 89 % after 2 s: half-way is sooner than the minimum gap, which is past the predicted end.
    assert not plan.next_poll(0.0, 2.0, 89, d, busy=False, min_gap_s=0.5, max_gap_s=2.0).spare
    busy = plan.next_poll(0.0, 3.0, 0, d, busy=True, min_gap_s=1.0)
    assert not busy.spare  # under a backlog every poll is aimed where its task is most likely done


def test_a_reading_is_spare_until_its_task_is_expected_done():
    """A reading whose slot slips past this moment is a poll expected to find its task done (slot_table.reserve)."""
    d = Durations(math.log(4.0), 0.5**2)
    # with progress: its predicted end, 60 % after 3 s (a whole percent reported: 60.5 % reached)
    half_way = plan.next_poll(0.0, 3.0, 60, d, busy=False, min_gap_s=0.5, max_gap_s=2.0)
    assert half_way.spare_until == pytest.approx(3.0 * 100 / 60.5 + plan.ARRIVAL_MARGIN_S)
    # without: the median of the belief among tasks still running after 3 s, 4.8 s here
    no_progress = plan.next_poll(0.0, 3.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0)
    assert no_progress.spare_until == pytest.approx(4.793, abs=0.001)
    assert plan.first_poll(100.0, d, busy=False).spare_until == pytest.approx(104.0)  # the belief's median
    # under a backlog there are no readings
    assert plan.next_poll(0.0, 3.0, 60, d, busy=True, min_gap_s=1.0).spare_until is None
    assert plan.first_poll(100.0, d, busy=True).spare_until is None
    assert plan.spares(4.0, 4.5) and not plan.spares(4.5, 4.5) and not plan.spares(4.0, None)
