"""How many jobs `picwish-ops backfill` keeps in flight by default: enough for the backfill's share of the QPS,
and at most half of a function's concurrency where the stack bounds it (half stays for new uploads)."""

import pytest

from ops.backfill import backfill_pace, jobs_for
from ops.target import Target


def _target(**kwargs) -> Target:
    return Target(input_bucket="in", output_bucket="out", state_machine_arn="arn:machine", **kwargs)


def test_on_aws_the_jobs_keep_the_backfills_create_lane_busy():
    # QPS 20, uploads keep 25 %: 20 × 0.97 / 2.1 × 0.75 = 6.93 creates a second, jobs living 30 s each
    assert backfill_pace(20, 0.25) == pytest.approx(6.93, abs=0.01)
    assert jobs_for(_target(qps=20, live_share=0.25)) == 208
    assert jobs_for(_target(qps=2, live_share=0.25)) == 21


@pytest.mark.parametrize(("concurrency", "jobs"), [(4, 2), (5, 2), (1, 1), (1000, 208)])
def test_where_the_stack_bounds_a_functions_concurrency_the_backfill_takes_at_most_half(concurrency, jobs):
    assert jobs_for(_target(qps=20, live_share=0.25, lambda_concurrency=concurrency)) == jobs


def test_the_local_stacks_description_carries_its_concurrency():
    info = {
        "input_bucket": "in",
        "output_bucket": "out",
        "state_machine_arn": "arn:machine",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:1",
        "aws_access_key_id": "a",
        "aws_secret_access_key": "s",
        "qps": 20,
        "lambda_concurrency": 4,
    }
    assert jobs_for(Target.from_info(info)) == 2
