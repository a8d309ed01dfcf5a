"""The DynamoDB slot limiter: distinct slots under concurrency, spacing within the QPS, gaps stay usable."""

import itertools
import threading

import boto3
import pytest
from moto import mock_aws

from offline.moto_atomic import make_dynamodb_writes_atomic
from picwish.ratelimit import SlotLimiter

make_dynamodb_writes_atomic()  # as DynamoDB itself guarantees; see the module's docstring


@pytest.fixture
def table():
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="slots",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def limiter(client, now=1000.0):
    return SlotLimiter("slots", qps=2, client=client, clock=lambda: now)


def test_slots_are_spaced_by_the_qps_with_headroom(table):
    lim = limiter(table)
    slots = [lim.reserve() for _ in range(6)]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(slots)]
    assert all(g == round(1 / (2 * 0.95), 6) for g in gaps)
    assert slots[0] >= 1000.0
    # No one-second window holds more than two calls.
    assert all(sum(1 for s in slots if t <= s < t + 1) <= 2 for t in slots)


def test_concurrent_reservations_never_share_a_slot(table):
    lim = limiter(table)
    got, lock = [], threading.Lock()

    def take():
        slot = lim.reserve()
        with lock:
            got.append(slot)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 20


def test_a_future_reservation_leaves_earlier_slots_free(table):
    lim = limiter(table)
    later = lim.reserve(not_before=1010.0)
    now = lim.reserve()
    assert now < 1001.0 < 1010.0 <= later


def test_a_create_horizon_leaves_far_slots_alone(table):
    lim = limiter(table)
    for _ in range(4):
        lim.reserve()  # the next ~2 s are taken
    assert lim.reserve(horizon_s=1.0) is None
    assert lim.reserve(horizon_s=3.0) is not None


def test_queue_wait_counts_the_creates_ahead(table):
    lim = limiter(table)
    tickets = [lim.take_ticket() for _ in range(8)]
    assert tickets == [1, 2, 3, 4, 5, 6, 7, 8]
    front = int(2.0 / lim.spacing)  # the creates that fit in the next two seconds may try now
    assert [lim.queue_wait(t, 0) for t in range(1, front + 1)] == [0] * front
    assert lim.queue_wait(8, 0) == pytest.approx((7 - front + 1) * lim.spacing * 2)
    lim.admit()
    lim.admit()
    assert lim.queue_wait(8, lim.admitted()) == pytest.approx((5 - front + 1) * lim.spacing * 2)


def test_a_ticket_is_the_same_for_every_retry_of_an_execution(table):
    lim = limiter(table)
    first = lim.take_ticket("exec-a")
    assert lim.take_ticket("exec-b") == first + 1
    assert lim.take_ticket("exec-a") == first


def test_a_late_call_goes_out_only_when_no_second_would_overflow(table):
    clock = [1000.0]
    lim = SlotLimiter("slots", qps=2, client=table, clock=lambda: clock[0])
    first = lim.reserve()
    clock[0] = first + 0.3  # late, but nothing else is reserved around: safe
    assert lim.safe_now(first)
    second, third = lim.reserve(first + 0.1), lim.reserve(first + 0.1)
    assert third - second == pytest.approx(lim.spacing)
    clock[0] = first + 0.3  # now two calls follow within the next second: not safe any more
    assert not lim.safe_now(first)
    clock[0] = first + lim.tolerance_s / 2  # within the tolerance it is always fine
    assert lim.safe_now(first)
