"""The poll-timing rules: quantiles of what tasks took, progress-based predictions, busy against idle budgets,
and completion samples placed inside the window the polls saw."""

import math
import random

import pytest

from picwish import polling
from picwish.polling import Durations


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
    idle = polling.first_poll_at(100.0, d, busy=False)
    busy = polling.first_poll_at(100.0, d, busy=True)
    assert idle - 100 == pytest.approx(4.0)
    assert busy - 100 == pytest.approx(4.0 * math.exp(0.5 * 1.0364), rel=0.01)  # the 85th percentile


def test_progress_predicts_the_end_and_a_busy_budget_pads_it():
    d = Durations(math.log(4.0), 0.5**2)
    idle = polling.next_poll_at(0.0, 3.0, 50, d, busy=False, min_gap_s=0.5)
    busy = polling.next_poll_at(0.0, 3.0, 50, d, busy=True, min_gap_s=1.0)
    assert idle == pytest.approx(3.0 * 100 / 50.5 + polling.ARRIVAL_MARGIN_S)
    assert busy == pytest.approx(3.0 * 100 / 50.5 * 1.15 + polling.ARRIVAL_MARGIN_S)


def test_a_poll_never_comes_sooner_than_the_minimum_gap():
    d = Durations(math.log(4.0), 0.5**2)
    assert polling.next_poll_at(0.0, 3.9, 99, d, busy=False, min_gap_s=0.5) == pytest.approx(4.4)


def test_a_task_past_every_estimate_is_polled_where_the_tail_says():
    d = Durations(math.log(2.0), 0.3**2)
    at = polling.next_poll_at(0.0, 30.0, 0, d, busy=False, min_gap_s=0.5)
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
    got = polling.completion_sample(created_at, last_running, seen_done, api_created, api_completed)
    assert got == pytest.approx(expected)


def test_durations_survive_the_table_round_trip():
    d = Durations(1.25, 0.09, 7)
    assert Durations.from_item(d.to_item(), 3.0) == d
    assert Durations.from_item(None, 3.0) == Durations.prior(3.0)


def test_an_idle_budget_never_leaves_a_task_alone_longer_than_the_max_gap_or_a_quarter_of_its_age():
    d = Durations(math.log(60.0), 0.3**2)  # the belief says a minute
    assert polling.next_poll_at(0.0, 2.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0) == pytest.approx(4.0)
    assert polling.next_poll_at(0.0, 40.0, 0, d, busy=False, min_gap_s=0.5, max_gap_s=2.0) == pytest.approx(50.0)
    assert polling.next_poll_at(0.0, 2.0, 0, d, busy=True, min_gap_s=1.0, max_gap_s=2.0) > 30
