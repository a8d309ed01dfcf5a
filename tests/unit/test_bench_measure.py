"""The benchmark's judgement: tasks paid per upload key in both input modes, and `--check` saying no."""

import collections
import hashlib
import math
import random
from datetime import UTC, datetime

import pytest

from bench import measure


def create(status=200, task_id="t1", **fields):
    return {"method": "POST", "status": status, "task_id": task_id if status == 200 else None, "fields": fields}


def test_a_second_paid_create_for_one_upload_is_a_duplicate_in_url_mode():
    url = "http://127.0.0.1:5000/bucket-in/incoming/idphoto/bench/b0001.jpg?X-Amz-Signature=abc"
    other = "http://127.0.0.1:5000/bucket-in/incoming/idphoto/bench/b0002.jpg?X-Amz-Signature=def"
    journal = [create(image_url=url), create(429, image_url=url), create(image_url=url), create(image_url=other)]
    paid = measure.paid_per_upload(journal, lambda e: measure.upload_key_of(e, {}))
    assert paid == {"incoming/idphoto/bench/b0001.jpg": 2, "incoming/idphoto/bench/b0002.jpg": 1}
    assert measure.duplicate_tasks(paid) == 1


def test_two_versions_of_one_key_are_two_uploads_each_paid_once_in_url_mode():
    base = "http://127.0.0.1:5000/bucket-in/incoming/idphoto/bench/b0001.jpg?X-Amz-Signature=abc&versionId="
    journal = [create(image_url=base + "v1"), create(image_url=base + "v2"), create(image_url=base + "v2")]
    paid = measure.paid_per_upload(journal, lambda e: measure.upload_key_of(e, {}))
    assert paid == {"incoming/idphoto/bench/b0001.jpg@v1": 1, "incoming/idphoto/bench/b0001.jpg@v2": 2}
    assert measure.duplicate_tasks(paid) == 1


def test_a_second_paid_create_for_one_upload_is_a_duplicate_in_bytes_mode():
    body = b"\xff\xd8 one photo"
    digest = hashlib.sha256(body).hexdigest()
    by_digest = {digest: "incoming/correction/x/a.jpg"}
    same_name_other_bytes = {"filename": "a.jpg", "bytes": 3, "sha256": "0" * 64}
    journal = [
        create(image_file={"filename": "a.jpg", "bytes": len(body), "sha256": digest}),
        create(image_file={"filename": "renamed.jpg", "bytes": len(body), "sha256": digest}),
        create(image_file=same_name_other_bytes),  # paid for no upload of this run: counted too
    ]
    paid = measure.paid_per_upload(journal, lambda e: measure.upload_key_of(e, by_digest))
    assert paid == {"incoming/correction/x/a.jpg": 2, None: 1}
    assert measure.duplicate_tasks(paid) == 2


def test_the_check_says_no_to_a_lost_upload_a_double_payment_or_a_missed_crash_window():
    clean = {"lost": 0, "duplicate_tasks": 0, "crashes_injected": {"crash_before_post": 2}}
    assert measure.verdict(clean) == []
    assert measure.verdict({**clean, "lost": 1}) == ["1 uploads ended without a record"]
    assert measure.verdict({**clean, "duplicate_tasks": 2}) == ["2 tasks paid twice"]
    missed = {**clean, "crashes_injected": {"crash_before_post": 2, "crash_mid_finalize": 0}}
    assert measure.verdict(missed) == ["crash windows never hit: crash_mid_finalize"]
    assert measure.verdict({**clean, "dead_letters": 3}) == ["3 events left in the dead-letter queue"]
    assert measure.verdict({**clean, "stale_records": 1}) == [
        "1 keys uploaded again ended in a record not of their newest version"
    ]


def test_outcomes_count_an_upload_without_a_record_as_lost():
    records = {"a": {"outcome": "succeeded"}, "b": {"outcome": "failed"}}
    assert measure.outcomes(["a", "b", "c"], records) == {"succeeded": 1, "failed": 1, "lost": 1}


def test_api_credits_are_their_own_line_of_the_cost():
    counts = dict.fromkeys(measure.PRICES, 0)
    counts["state_transitions"] = 2000
    cost = measure.cost_per_1000(counts, 200, credits=300, credit_price=0.05)
    assert cost["state_transitions"] == 0.25 and cost["aws_total"] == 0.25
    assert cost["api_credits"] == 75.0 and cost["total"] == 75.25


def test_overhead_is_split_at_the_first_poll_that_could_see_the_task_done():
    tasks = {"t1": {"created": 100.0, "completed": 105.0}, "t2": {"created": 100.0, "completed": 103.0}}
    journal = [
        {"method": "GET", "status": 200, "task_id": "t1", "counted_at": 104.0, "time": 104.1},  # still running
        {"method": "GET", "status": 429, "task_id": "t1", "counted_at": 105.2, "time": 105.3},  # refused: saw nothing
        {"method": "GET", "status": 200, "task_id": "t1", "counted_at": 105.5, "time": 105.6},
        {"method": "GET", "status": 200, "task_id": "t1", "counted_at": 106.0, "time": 106.1},  # a later look
        {"method": "GET", "status": 200, "task_id": "t2", "counted_at": 104.0, "time": 104.1},
    ]
    records = {
        "a.jpg": {"outcome": "succeeded", "task_id": "t1", "timestamps": {"result_written": stamp(105.75)}},
        "b.jpg": {"outcome": "succeeded", "task_id": "t2", "timestamps": {"result_written": stamp(104.5)}},
        "c.jpg": {"outcome": "failed", "task_id": "t3"},
    }
    lags, after = measure.overhead_split(records, tasks, journal)
    assert lags == pytest.approx([0.5, 1.0])
    assert after == pytest.approx([0.25, 0.5])


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def test_the_bound_is_two_calls_per_image_or_a_slow_task_created_late_whichever_is_longer():
    def post(at: float, task_id: str) -> dict:
        return {"method": "POST", "status": 200, "task_id": task_id, "time": at}

    journal = [post(100.0 + i, f"t{i}") for i in range(4)] + [{"method": "GET", "status": 200, "task_id": "t0"}]
    tasks = {f"t{i}": {"created": 100.0 + i, "completed": 102.0 + i} for i in range(4)}
    assert measure.bound_wall_s(journal, tasks, qps=2) == pytest.approx(4.0)  # 8 calls at 2 a second
    tasks["t2"]["completed"] = 102.0 + 10.0  # the third task created takes 10 s
    assert measure.bound_wall_s(journal, tasks, qps=2) == pytest.approx(2 / 2 + 10.0)  # created at 1 s at best
    assert measure.bound_wall_s([], tasks, qps=2) is None


def test_with_foresight_each_ended_task_is_polled_at_its_end_or_when_the_api_s_window_first_allows():
    def post(at: float, task_id: str) -> dict:
        return {"method": "POST", "status": 200, "task_id": task_id, "time": at, "counted_at": at}

    # Two creates fill the second from 10.0; two tasks end at 10.5 and one alone at 20.0. The run's own polls
    # (GETs) are not the foresight's: it places its own.
    journal = [post(10.0, "a"), post(10.2, "b"), {"method": "GET", "status": 200, "task_id": "a", "time": 10.6}]
    tasks = {
        "a": {"created": 10.0, "completed": 10.5},
        "b": {"created": 10.2, "completed": 10.5},
        "c": {"created": 5.0, "completed": 20.0},
        "d": {"created": 5.0},  # never ended: no poll finds it
    }
    lags = measure.foresight_lags(journal, tasks, qps=2)
    # 10.0 leaves the window at 11.0, 10.2 at 11.2: the first poll goes then, the second once 10.2 has left
    # and the first poll's second still holds one call.
    assert lags == pytest.approx([0.5, 0.7, 0.0], abs=1e-5)
    # A third call in a second is never placed: the one after two polls at the same end waits a second.
    lags = measure.foresight_lags([], {k: {"created": 0.0, "completed": 30.0} for k in "xyz"}, qps=2)
    assert lags == pytest.approx([0.0, 0.0, 1.0], abs=1e-5)


def test_a_quantile_s_interval_holds_it_nine_times_in_ten_and_says_when_it_cannot():
    rng = random.Random(7)
    # 40 overheads drawn from a known law (exponential, median ln 2 / 2): in 2,000 such runs, the interval of the
    # p50 holds the true p50 about 90 % of the time (at least: order statistics step), not always.
    true_p50 = math.log(2) / 2
    held = 0
    for _ in range(2000):
        low, high = measure.quantile_interval([rng.expovariate(2) for _ in range(40)], 0.5)
        held += low <= true_p50 <= high
    assert 0.9 <= held / 2000 <= 0.95
    # The interval is two of the values themselves: the 15th and the 26th of 40, the 51st and 70th of 120.
    assert measure.quantile_interval(range(1, 41), 0.5) == (15, 26)
    assert measure.quantile_interval(range(1, 121), 0.5) == (51, 70)
    # 40 values cannot bound a p95 from above (all 40 fall below it with probability 13 %); 120 can.
    assert measure.quantile_interval(range(1, 41), 0.95) == (36, None)
    assert measure.quantile_interval(range(1, 121), 0.95) == (110, 119)
    assert measure.quantile_interval([], 0.5) == (None, None)
    assert measure.quantile_interval(range(1, 5001), 0.5) == (2442, 2559)  # ten burst runs pooled: no overflow


def test_a_summary_pools_the_runs_overheads():
    runs = [
        {"settings": {"seed": seed}, "overhead_p50_s": p50, "overheads_s": values}
        for seed, p50, values in ((1, 0.3, [0.1, 0.3, 0.9]), (2, 0.6, [0.5, 0.6, 2.0]))
    ]
    report = measure.summary(runs)
    assert report["spread"]["overhead_p50_s"] == {"min": 0.3, "median": 0.6, "max": 0.6}
    assert report["pooled"]["overheads"] == 6 and report["pooled"]["overhead_p50_s"] == 0.6


def test_the_sustained_rate_is_the_middle_of_a_run_without_its_start_or_a_straggler():
    steady = [10.0 + 0.5 * i for i in range(40)]  # two a second
    # a slow start and one slow task's last event minutes on leave the middle's rate as it was
    assert measure.sustained_rate([0.0, 5.0, *steady, 300.0]) == pytest.approx(2.0)
    assert measure.sustained_rate(steady) == pytest.approx(2.0)
    assert measure.sustained_rate(steady[:9]) is None  # too few to have a middle
    assert measure.sustained_rate([7.0] * 20) is None  # a middle of no length


def test_call_figures_count_polls_and_429s_per_image():
    journal = [create(), create(429), {"method": "GET", "status": 200}, {"method": "GET", "status": 429}]
    assert measure.call_figures(journal, 2) == {
        "api_calls_per_image": 2.0,
        "polls_per_image": 1.0,
        "http_429": 2,
        "http_429_share": 0.5,
    }


def test_failure_figures_count_reasons_and_the_commonest_errors():
    records = {
        "a": {"outcome": "failed", "reason": "task failed", "error": "TaskFailedError", "message": "state -1"},
        "b": {"outcome": "failed", "reason": "task failed", "error": "TaskFailedError", "message": "state -1"},
        "c": {"outcome": "succeeded"},
    }
    assert measure.failure_figures(records) == {
        "failure_reasons": {"task failed": 2},
        "failure_errors": {"TaskFailedError: state -1": 2},
    }


def test_throughput_is_read_against_half_the_qps():
    written = [float(i) for i in range(20)]  # one record a second
    figures = measure.throughput_figures(20, 4.0, wall_s=10.0, written=written, bound_s=8.0)
    assert figures == {
        "throughput_images_per_s": 2.0,
        "ceiling_images_per_s": 2.0,
        "throughput_share_of_ceiling": 1.0,
        "sustained_share_of_ceiling": 0.5,
        "bound_share_of_ceiling": 1.25,
    }
    assert (
        measure.throughput_figures(20, 4.0, wall_s=10.0, written=[1.0] * 5, bound_s=None)["sustained_share_of_ceiling"]
        is None
    )


def test_aws_counts_bill_what_ran_and_every_cold_start_s_init():
    counts = measure.aws_counts(
        transitions=12,
        invocation_seconds=[("Create", 2.0), ("Poll", 1.0)],
        cold_starts=[("Create", 500.0)],
        memory_mb={"Create": 1024, "Poll": 512},
        aws_calls=collections.Counter(
            {"s3.PutObject": 2, "s3.GetObject": 3, "dynamodb.PutItem": 4, "dynamodb.Query": 5}
        ),
        egress_bytes=2_000_000_000,
        log_bytes=1_000_000_000,
    )
    assert counts == {
        "state_transitions": 12,
        "lambda_requests": 2,
        "lambda_gb_s": 2.0 + 0.5 + 0.5,
        "dynamodb_write": 4,
        "dynamodb_read": 5,
        "s3_put": 2,
        "s3_get": 3,
        "egress_gb": 2.0,
        "log_gb": 1.0,
        "xray_traces": 2,
    }
