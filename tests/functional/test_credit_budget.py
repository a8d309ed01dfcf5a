"""The credit budget on the local stack: uploads past it wait (no failure, no record), then complete once the
budget is raised — each paid once."""

from __future__ import annotations

import time

import boto3

from offline.record_reader import read_records
from picwish_pipeline import tally
from tests.support import images

UPLOADS = 5


def _environment(pipeline, **changes: str) -> dict[str, str]:
    """Set variables of the create function's environment (as a stack update does); what it was before."""
    functions = boto3.client("lambda")
    name = pipeline.stack.functions()["CreateFunction"]
    found = functions.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    before = {k: str(v) for k, v in found.items()}  # moto hands numeric parameters back as numbers
    functions.update_function_configuration(FunctionName=name, Environment={"Variables": {**before, **changes}})
    return dict(before)


def _spent(pipeline) -> int:
    now = time.time()
    table = pipeline.stack.outputs["TasksTableName"]
    _total, day = tally.read(boto3.client("dynamodb"), table, now - 23 * 3600, now)
    return day.get("credits", 0) + day.get("credits_undocumented", 0)


def _paid(pipeline) -> int:
    return sum(pipeline.mock.credits()["credits"].values())


def test_uploads_past_the_budget_wait_and_complete_when_it_is_raised(pipeline):
    spent, paid = _spent(pipeline), _paid(pipeline)
    before = _environment(pipeline, CREDIT_BUDGET_PER_DAY=str(spent + 2), BUDGET_RECHECK_S="1")
    try:
        keys = [f"incoming/idphoto/budget/{i}.jpg" for i in range(UPLOADS)]
        for i, key in enumerate(keys):
            pipeline.upload(key, images.portrait(width=70 + i))
        deadline = time.monotonic() + 60
        while _paid(pipeline) - paid < 2:
            assert time.monotonic() < deadline, "the budget's two tasks were never made"
            time.sleep(0.2)
        time.sleep(3)  # three re-checks of the budget: the others still wait, nothing else is paid
        assert _paid(pipeline) - paid == 2
        waiting = [key for key in keys if not _recorded(pipeline, key)]
        assert len(waiting) == UPLOADS - 2
        _environment(pipeline, CREDIT_BUDGET_PER_DAY=str(spent + 50))  # the budget raised
        records = {key: pipeline.record(key, timeout_s=60) for key in keys}
    finally:
        _environment(pipeline, **{k: before.get(k, "0") for k in ("CREDIT_BUDGET_PER_DAY", "BUDGET_RECHECK_S")})
    assert {kind for kind, _record in records.values()} == {"result"}
    assert _paid(pipeline) - paid == UPLOADS  # each paid once


def _recorded(pipeline, key: str) -> bool:
    return bool(read_records(pipeline.s3, pipeline.stack.output_bucket, key))
