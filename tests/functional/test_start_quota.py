"""A drop past Step Functions' StartExecution quota: submit waits each throttled start out (with backoff, inside its
own time) instead of giving up into an "internal error" record, Lambda's retries and the dead-letter queue
(`offline/moto_throttles.py` applies the quota offline, scaled down)."""

from __future__ import annotations

from offline.moto_throttles import lift_start_limit, limit_start_executions
from tests.support import images


def test_starts_past_the_quota_are_waited_out_and_every_upload_ends_in_its_result(pipeline):
    submit = pipeline.stack.functions()["SubmitFunction"]
    keys = [f"incoming/idphoto/quota/q{i:02}.jpg" for i in range(12)]
    before = len(pipeline.runtime.invocations)
    quota = limit_start_executions(burst=2, per_second=1.0)
    try:
        for key in keys:
            pipeline.upload(key, images.portrait())
        records = {key: pipeline.record(key, timeout_s=120) for key in keys}
    finally:
        lift_start_limit()
    assert quota.throttled > 0  # the quota was met
    assert {kind for kind, _ in records.values()} == {"result"}
    submits = [i for i in pipeline.runtime.invocations[before:] if i.function_name == submit]
    assert [i.error for i in submits if i.error] == []  # no submit gave up: no "internal error" record, no retry
    assert len(submits) == len(keys)
