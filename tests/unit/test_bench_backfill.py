"""The backfill benchmark says no when a promise is broken (`python -m bench.backfill --check`)."""

import pytest

from bench.backfill import verdict

SOUND = {
    "keys_without_one_record_of_newest": 0,
    "paid_for_keys_with_a_result": 0,
    "credits_paid": 2102,
    "bill": {"credits": 2102},
    "live": {"p95_ratio": 1.4},
    "dead_letters": 0,
}


def test_a_sound_run_passes():
    assert verdict(SOUND) == []


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ({"keys_without_one_record_of_newest": 3}, "3 keys without one record of their newest"),
        ({"paid_for_keys_with_a_result": 1}, "1 tasks paid for keys that had their result"),
        ({"credits_paid": 2105}, "paid 2105 credits against a bill of 2102"),
        ({"live": {"p95_ratio": 2.3}}, "live uploads' p95 2.3x the baseline's"),
        ({"dead_letters": 2}, "2 dead letters"),
    ],
)
def test_each_broken_promise_is_said(broken, said):
    assert verdict(SOUND | broken) == [said]
