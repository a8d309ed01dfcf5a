"""The budget as the API counts it: a burst through the whole pipeline at QPS 2, every call in the mock's journal
(creates and polls) counted per rolling second. The calls the API served never exceed 2 in any second; a call
that arrives late on a loaded machine may meet a 429, which is waited out (one in twenty here at most), and
each upload is paid for once."""

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
    keys = [f"incoming/idphoto/budget/{i:02d}.jpg" for i in range(20)]  # about 44 calls: room for two late ones
    for key in keys:
        pipeline.upload(key, images.portrait())
    assert [pipeline.record(key, timeout_s=90)[0] for key in keys] == ["result"] * len(keys)
    calls = [e for e in pipeline.mock.requests() if e["path"].startswith("/api/")]
    served = [e for e in calls if e["status"] != 429]
    paid = [e for e in served if e["method"] == "POST"]
    assert len(paid) == len(keys) and len(served) > len(keys)  # one task per upload; the polls are counted too
    assert len(calls) - len(served) <= len(calls) / 20, [e["status"] for e in calls]
    moments = sorted(e["counted_at"] for e in served)
    busiest = max(sum(1 for t in moments[i:] if t < start + 1.0) for i, start in enumerate(moments))
    assert busiest <= QPS, busiest
