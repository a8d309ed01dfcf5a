"""The budget as the API counts it: a burst through the whole pipeline at QPS 2, every call in the mock's journal
(creates and polls, answered or refused) counted per rolling second — never over 2, never a 429."""

from __future__ import annotations

import pytest

from offline.harness import build
from tests.support import images

QPS = 2


@pytest.fixture(scope="module")
def pipeline_at_qps_2():
    built, stack = build(("--qps", str(QPS), "--time-scale", "0.01"), {"ApiQps": str(QPS), "WaitScale": "0.01"})
    with stack:
        yield built


def test_a_burst_keeps_every_call_within_the_qps(pipeline_at_qps_2):
    pipeline = pipeline_at_qps_2
    keys = [f"incoming/idphoto/budget/{i:02d}.jpg" for i in range(10)]
    for key in keys:
        pipeline.upload(key, images.portrait())
    assert [pipeline.record(key, timeout_s=90)[0] for key in keys] == ["result"] * len(keys)
    calls = [e for e in pipeline.mock.requests() if e["path"].startswith("/api/")]
    creates = [e for e in calls if e["method"] == "POST"]
    assert len(creates) == len(keys) and len(calls) > len(keys)  # the polls are counted too
    assert [e for e in calls if e["status"] == 429] == []
    moments = sorted(e["counted_at"] for e in calls)
    busiest = max(sum(1 for t in moments[i:] if t < start + 1.0) for i, start in enumerate(moments))
    assert busiest <= QPS, busiest
