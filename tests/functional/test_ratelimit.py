"""The DynamoDB slot limiter and a step's call in its slot: distinct slots under concurrency, spacing within the
QPS, gaps stay usable, calls held behind late ones, announced before they are made."""

import itertools
import math
import threading
import time

import pytest
from moto.dynamodb import models as dynamodb_models

from offline.moto_atomic import make_moto_atomic
from picwish_pipeline.config import PipelineSettings
from picwish_pipeline.payloads import CreateState
from picwish_pipeline.scheduler import calling
from picwish_pipeline.scheduler.plan import NextPoll
from picwish_pipeline.scheduler.slot_table import PARTITION, SlotLimiter
from picwish_pipeline.services import Services

make_moto_atomic()  # as DynamoDB itself guarantees; see the module's docstring


@pytest.fixture
def table(rate_table):
    return rate_table


def at_once(n: int, call) -> list:
    """`call()` from n threads at the same time; what each returned."""
    got, lock = [], threading.Lock()

    def run():
        value = call()
        with lock:
            got.append(value)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def limiter(client, now=1000.0):
    return SlotLimiter("slots", qps=2, client=client, clock=lambda: now)


def test_slots_are_spaced_by_the_qps_with_headroom(table):
    lim = limiter(table)
    slots = [lim.reserve() for _ in range(6)]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(slots)]
    assert all(g == round(1 / (2 * lim.headroom), 6) for g in gaps) and lim.headroom < 1
    assert slots[0] >= 1000.0
    # No one-second window holds more than two calls.
    assert all(sum(1 for s in slots if t <= s < t + 1) <= 2 for t in slots)


def test_concurrent_reservations_never_share_a_slot(table):
    lim = limiter(table)
    assert len(set(at_once(20, lim.reserve))) == 20


def test_a_future_reservation_leaves_earlier_slots_free(table):
    lim = limiter(table)
    later = lim.reserve(not_before=1010.0)
    now = lim.reserve()
    assert now < 1001.0 < 1010.0 <= later


def test_creates_take_places_in_a_lane_and_an_idle_lane_gives_a_slot_now(table):
    clock = [1000.0]
    lim = SlotLimiter("slots", qps=2, client=table, clock=lambda: clock[0])
    burst = [round(lim.reserve_create(2) / lim.spacing) for _ in range(12)]
    assert [b - a for a, b in itertools.pairwise(burst)] == [2] * 11
    assert lim.schedule().busy(1000.0)  # creates are queued further ahead than ten seconds
    assert not lim.schedule().busy(1003.0, window_s=10.0 + 11 * 2 * lim.spacing)
    clock[0] = 1100.0  # the lane has been idle
    assert lim.reserve_create(2) == pytest.approx(math.ceil(1100.0 / lim.spacing) * lim.spacing)
    assert not lim.schedule().busy(1100.0)


def test_a_lane_spreads_fractional_gaps_over_the_slots_and_keeps_them_when_creates_arrive_one_by_one(table):
    clock = [1000.0]
    lim = SlotLimiter("slots", qps=2, client=table, clock=lambda: clock[0])
    places = [round(lim.reserve_create(2.5) / lim.spacing) for _ in range(11)]
    gaps = [b - a for a, b in itertools.pairwise(places)]
    assert sorted(set(gaps)) == [2, 3] and sum(gaps) == pytest.approx(2.5 * len(gaps), abs=1)
    clock[0] = 1100.0
    arriving = []
    for _ in range(10):  # one create every 0.8 s: faster than the lane lets creates go
        arriving.append(lim.reserve_create(2.5))
        clock[0] += 0.8
    assert all(b - a >= 2 * lim.spacing - 1e-6 for a, b in itertools.pairwise(arriving))
    assert len(arriving) / (arriving[-1] - arriving[0] + 2.5 * lim.spacing) <= 1 / (2.5 * lim.spacing) + 1e-6


def test_a_backfill_takes_its_share_of_the_creates_and_an_upload_goes_ahead_of_its_queue(table):
    clock = [1000.0]
    lim = SlotLimiter("slots", qps=2, client=table, clock=lambda: clock[0])
    backfill = [round(lim.reserve_create(2, backfill=True, live_share=0.25) / lim.spacing) for _ in range(40)]
    gaps = [b - a for a, b in itertools.pairwise(backfill)]
    assert sum(gaps) / len(gaps) == pytest.approx(2 / 0.75, abs=0.05)  # the backfill's 75 % of the lane
    assert lim.schedule().queue_end == pytest.approx(backfill[-1] * lim.spacing, abs=lim.spacing)
    clock[0] = 1001.0
    uploads = [round(lim.reserve_create(2, live_share=0.25) / lim.spacing) for _ in range(5)]
    now = math.ceil(1001.0 / lim.spacing)
    assert uploads[0] - now <= 1  # not behind the backfill's 107 slots of queue
    assert [b - a >= 8 for a, b in itertools.pairwise(uploads)] == [True] * 4  # the uploads' 25 %, while it runs
    clock[0] = backfill[-1] * lim.spacing + 60  # the backfill's lane has run out: uploads get the whole lane
    alone = [round(lim.reserve_create(2, live_share=0.25) / lim.spacing) for _ in range(5)]
    assert [b - a for a, b in itertools.pairwise(alone)] == [2] * 4


def test_concurrent_creates_never_share_a_place_in_the_lane(table):
    lim = limiter(table)
    places = sorted(round(s / lim.spacing) for s in at_once(12, lambda: lim.reserve_create(2)))
    assert [b - a for a, b in itertools.pairwise(places)] == [2] * 11


def test_a_call_is_held_only_while_a_late_call_before_it_would_make_a_second_overflow(table):
    clock = [1000.0]
    lim = SlotLimiter("slots", qps=2, client=table, clock=lambda: clock[0])
    first, second, third = lim.reserve(), lim.reserve(), lim.reserve()
    lim.mark_called(first, first)
    lim.mark_called(second, second)
    clock[0] = third - 0.25  # asked shortly before the slot; on schedule it is the slot itself
    assert lim.ready_at(third) == third
    lim.mark_called(first, first + 0.2)  # had the first call gone out 0.2 s late, the third waits for it
    assert lim.ready_at(third) == pytest.approx(first + 0.2 + 1 + lim.margin_s)
    assert third < lim.ready_at(third) < third + 0.2
    clock[0] = first + 0.3  # a late call itself only looks at the calls that really went out before it
    assert lim.ready_at(first) == clock[0]


class FakeTime:
    """A clock the step's sleeps advance, so slot timing is exact and the test takes no time."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def services(table, fake: FakeTime) -> Services:
    settings = PipelineSettings(rate_table="slots", qps=2)
    return Services(settings=settings, s3=None, dynamodb=table, clock=fake.clock, sleep=fake.sleep)


def called_at(table, slot_at: float, spacing: float) -> float | None:
    item = table.get_item(TableName="slots", Key={"pk": {"S": PARTITION}, "sk": {"N": str(round(slot_at / spacing))}})[
        "Item"
    ]
    return float(item["called_at"]["N"]) if "called_at" in item else None


def test_a_step_calls_at_its_slot_and_announces_the_call_before_making_it(table):
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    first, second, third = lim.reserve(), lim.reserve(), lim.reserve()
    lim.mark_called(first, first)
    lim.mark_called(second, second)
    fake.now = third - 1.2  # woken by the Wait state ahead of the slot
    seen = {}

    def call() -> CreateState:
        seen.update(at=fake.now, announced=called_at(table, third, lim.spacing))
        return CreateState(status="called")

    assert calling.call_in_slot(svc, third, call, otherwise=CreateState()) == CreateState(status="called")
    assert seen == {"at": pytest.approx(third), "announced": pytest.approx(third)}


def test_a_step_holds_its_call_behind_a_late_call_and_gives_up_a_slot_it_would_miss_by_more_than_the_slip(table):
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    first, second, third = lim.reserve(), lim.reserve(), lim.reserve()
    lim.mark_called(first, first + 0.2)  # went out 0.2 s late
    lim.mark_called(second, second)
    fake.now = third - 1.0
    made = []
    calling.call_in_slot(svc, third, lambda: made.append(fake.now) or CreateState(), otherwise=CreateState())
    assert made == [pytest.approx(first + 0.2 + 1 + lim.margin_s)]  # held: never three calls in one second

    fourth, fifth = lim.reserve(), lim.reserve()
    lim.mark_called(fourth, fourth)
    fake.now = fifth + lim.max_slip_s + 0.1  # the step itself came too late
    out = calling.call_in_slot(
        svc, fifth, lambda: made.append(fake.now) or CreateState(), otherwise=CreateState(status="wait")
    )
    assert len(made) == 1 and out.status == "wait" and out.slot_at > fifth


def test_a_call_inside_its_slot_goes_out_at_its_moment_and_the_call_two_slots_on_waits_for_it(table):
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    base = lim.reserve()
    aimed = base + lim.spacing + 0.2  # a poll aimed 0.2 s into the next slot
    assert lim.reserve(aimed, within=True) == pytest.approx(aimed)  # not the start of the slot after it
    assert lim.reserve(aimed, within=True) == pytest.approx(base + 2 * lim.spacing)  # that slot is taken now
    assert lim.reserve(aimed) == pytest.approx(base + 3 * lim.spacing)  # at a slot's start: the first free one
    late = base + 3 * lim.spacing + 0.3  # past half a slot: the next slot's start, 0.2 s on
    assert lim.reserve(late, within=True) == pytest.approx(base + 4 * lim.spacing)
    lim.mark_called(base, base)
    fake.now = aimed - 1.0
    made = []
    calling.call_in_slot(svc, aimed, lambda: made.append(fake.now) or CreateState(), otherwise=CreateState())
    assert made == [pytest.approx(aimed)]  # in its slot, at its moment: the call before it is 0.715 s back
    assert called_at(table, base + lim.spacing, lim.spacing) == pytest.approx(aimed)  # announced in its slot
    # With the next slot's call made at its start, the one after would make three within one second: it goes
    # out 1 s + margin after the call sent inside its slot.
    lim.mark_called(base + 2 * lim.spacing, base + 2 * lim.spacing)
    fake.now = base + 3 * lim.spacing - 1.0
    calling.call_in_slot(
        svc, base + 3 * lim.spacing, lambda: made.append(fake.now) or CreateState(), otherwise=CreateState()
    )
    assert made[1] == pytest.approx(aimed + 1 + lim.margin_s)


def test_a_call_that_cannot_wait_takes_a_spare_call_s_slot_and_the_spare_call_learns_it(table):
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    wanted = lim.reserve(1005.0)
    lim.page = 3  # a short page: the walk past taken slots reads several
    reading = lim.reserve(wanted + lim.spacing, spare_until=math.inf)
    announced = lim.reserve(wanted + lim.spacing, spare_until=math.inf)  # a spare call never takes another's slot
    assert announced == pytest.approx(wanted + 2 * lim.spacing)
    assert lim.mark_called(announced, announced, spare=True) is True
    aimed = lim.reserve(wanted)  # wants the taken slot: takes the first one it may, the reading's
    assert aimed == pytest.approx(reading)
    assert lim.mark_called(reading, reading, spare=True) is False  # the reading finds its slot gone
    assert lim.mark_called(aimed, aimed) is True
    # An announced spare call keeps its slot; a call that cannot wait never gives its own up.
    assert lim.reserve(wanted) == pytest.approx(wanted + 3 * lim.spacing)
    # The displaced reading's step makes no call: it waits for another slot, and gives way no more.
    fake.now = reading - 1.0
    made = []
    out = calling.call_in_slot(
        svc, reading, lambda: made.append(fake.now) or CreateState(), otherwise=CreateState(), spare=True
    )
    assert made == [] and not out.spare and out.slot_at > reading


def test_a_reading_pushed_past_its_task_s_expected_end_by_taken_slots_no_longer_gives_way(table):
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    base = math.ceil(1005.0 / lim.spacing) * lim.spacing
    for _ in range(3):  # a create and two polls aimed at their tasks' ends
        lim.reserve(base)
    # A reading planned at `base`, its task expected done 1.5 slots later: the first free slot is past that.
    plan = NextPoll(base, spare_until=base + 1.5 * lim.spacing)
    reading = calling.poll_at(svc, plan, busy=False)
    assert reading.slot_at == pytest.approx(base + 3 * lim.spacing) and not reading.spare
    # There it is a poll expected to find its task done: a call that cannot wait does not take its slot.
    assert lim.reserve(base) == pytest.approx(base + 4 * lim.spacing)
    assert lim.mark_called(reading.slot_at, reading.slot_at) is True
    # A reading whose slot comes before its task's expected end still gives way.
    later = base + 20 * lim.spacing
    early = calling.poll_at(svc, NextPoll(later, spare_until=later + 10), busy=False)
    assert early.spare and lim.reserve(later) == pytest.approx(early.slot_at) == pytest.approx(later)
    assert lim.mark_called(early.slot_at, early.slot_at, spare=True) is False


def second_slot_a_second_ahead(table):
    """A limiter on a fake clock whose first slot's call has gone out; the clock a second before the second."""
    fake = FakeTime(1000.0)
    svc = services(table, fake)
    lim = svc.limiter()
    first, second = lim.reserve(), lim.reserve()
    lim.mark_called(first, first)
    fake.now = second - 1.0
    return fake, svc, lim, second


def test_a_call_held_up_after_announcing_itself_says_when_it_really_goes_before_it_goes(table):
    fake, svc, lim, second = second_slot_a_second_ahead(table)
    seen = {}

    def slow_claim() -> None:
        fake.now += 0.25 + 0.3  # the write before the call took 0.3 s past the slot

    def call() -> CreateState:
        seen.update(at=fake.now, announced=called_at(table, second, lim.spacing))
        return CreateState(status="called")

    calling.call_in_slot(svc, second, call, otherwise=CreateState(), prepare=slow_claim)
    # It says it goes a moment ahead of its real time (room for the write and the read), and goes then: the
    # calls after it read the real time, not the slot
    assert seen["at"] == pytest.approx(second + 0.3 + calling.LATE_LEAD_S)
    assert seen["announced"] == pytest.approx(seen["at"])

    # Held up while the calls around it moved: the one before went out late, the one after announced itself.
    # At its real moment a second would hold three calls: it waits until it would not.
    third, fourth, fifth = lim.reserve(1010.0), lim.reserve(1010.0), lim.reserve(1010.0)  # clear of the above
    lim.mark_called(third, third)
    fake.now = fourth - 1.0

    def slow_claim_while_others_move() -> None:
        slow_claim()
        lim.mark_called(third, third + 0.3)
        lim.mark_called(fifth, fifth)

    made = []
    calling.call_in_slot(
        svc,
        fourth,
        lambda: made.append(fake.now) or CreateState(),
        otherwise=CreateState(),
        prepare=slow_claim_while_others_move,
    )
    assert made == [pytest.approx(third + 0.3 + 1 + lim.margin_s)]
    assert called_at(table, fourth, lim.spacing) == pytest.approx(made[0])


def test_a_late_call_goes_out_no_sooner_than_the_moment_it_announced(table, monkeypatch):
    # A late call checks the send times once more before it goes, and that read takes time (40 ms here; tens of
    # ms on a busy host). Announcing the moment before the read and calling after it put the real call later
    # than the announced one, and a call two slots on, timed by the announcement, made three in a second: the
    # 429s of seeds 1 and 3 (the mock counted the late call 30-70 ms after its announced time).
    fake, svc, lim, second = second_slot_a_second_ahead(table)
    slow_read = SlotLimiter.ready_at

    def ready_at(self, slot_at):
        found = slow_read(self, slot_at)
        fake.now += 0.04
        return found

    monkeypatch.setattr(SlotLimiter, "ready_at", ready_at)
    seen = {}

    def call() -> CreateState:
        seen.update(at=fake.now, announced=called_at(table, second, lim.spacing))
        return CreateState(status="called")

    calling.call_in_slot(
        svc, second, call, otherwise=CreateState(), prepare=lambda: setattr(fake, "now", fake.now + 0.55)
    )
    assert seen["at"] > second + 0.3  # it was late
    assert seen["announced"] >= seen["at"] - 1e-9  # and went no sooner than it said: a later call's second holds


def test_a_counter_is_never_seen_half_created(table, monkeypatch):
    # moto's UpdateItem stores a new item with its keys only, then applies the update; DynamoDB is atomic, and the
    # create lane is read and written this way. A slower update (as on the busy local stack) holds moto's window
    # open.
    validate = dynamodb_models.UpdateExpressionValidator.validate

    def slow_validate(self):
        time.sleep(0.005)
        return validate(self)

    monkeypatch.setattr(dynamodb_models.UpdateExpressionValidator, "validate", slow_validate)
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            for i in range(5):
                item = table.get_item(TableName="slots", Key={"pk": {"S": f"q{i}"}, "sk": {"N": "1"}}).get("Item")
                if item is not None:
                    seen.append("n" in item)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(5):
            table.update_item(
                TableName="slots",
                Key={"pk": {"S": f"q{i}"}, "sk": {"N": "1"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
    finally:
        done.set()
        reader.join()
    assert seen and all(seen)


def test_a_long_backlog_of_taken_slots_gives_a_later_slot_never_an_error(table):
    lim = limiter(table)
    first = math.ceil(1000.0 / lim.spacing)  # the slot the next reservation would take
    taken = range(first, first + 16 * lim.page + 50)  # more consecutive slots than 16 pages: today's give-up point
    for chunk in (taken[i : i + 25] for i in range(0, len(taken), 25)):
        table.batch_write_item(
            RequestItems={
                "slots": [{"PutRequest": {"Item": {"pk": {"S": PARTITION}, "sk": {"N": str(i)}}}} for i in chunk]
            }
        )
    assert round(lim.reserve() / lim.spacing) == first + len(taken)
    assert round(lim.reserve() / lim.spacing) == first + len(taken) + 1


def test_lost_races_never_fail_a_reservation(table):
    lim = limiter(table)
    real_put, losses = table.put_item, []

    def losing_put(**kwargs):
        if len(losses) < 40:  # another step wins this slot first, forty times over
            losses.append(kwargs["Item"]["sk"]["N"])
            real_put(**kwargs)
        return real_put(**kwargs)

    lim.client = type("Racing", (), {"put_item": staticmethod(losing_put), "query": table.query})()
    slot = lim.reserve()
    assert len(losses) == 40 and round(slot / lim.spacing) > int(losses[-1])


@pytest.mark.parametrize("qps", [1, 2, 4, 5])
def test_calls_on_consecutive_slots_are_never_held_for_each_other(qps):
    # Were qps + 1 consecutive slots closer than a second plus the send margin, every call on time would be held
    # behind the one qps slots before it, and the lateness would add up until slots are missed.
    lim = SlotLimiter("slots", qps=qps, client=None)
    assert qps * lim.spacing >= 1 + lim.margin_s
