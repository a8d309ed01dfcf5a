"""A queue of creates longer than the machine's timeout: every upload still ends in its result. An execution
waits for its create slot only as long as its own timeout leaves room for a job's life; past that it hands its
place (the slot it holds) to a fresh execution of the same upload (`picwish_pipeline.create`)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from offline.__main__ import stack_info
from offline.harness import TEMPLATE, build
from ops.status import status
from ops.target import Target
from picwish_visual.catalog import get_operation
from statemachine.definition import definition
from tests.support import images

UPLOADS = 50  # at QPS 5 the create lane holds one create per 0.42 s: the last slot lies ~21 s out


def _short_lived_template(tmp_path, timeout_s: int, job_life_s: int):
    """template.yaml with the machine's timeout (and so its queue horizon) scaled down, and the wait between
    throttled invocations with it: a drop's first seconds throttle the create function offline (a few sandboxes),
    and a 30 s backoff would not fit a 25 s job life."""
    asl = definition(machine_timeout_s=timeout_s, job_life_s=job_life_s)
    for state in asl["States"].values():
        for retry in state.get("Retry", []):
            if retry["ErrorEquals"] == ["Lambda.TooManyRequestsException"]:
                retry["MaxDelaySeconds"] = 2
    asl_path = tmp_path / "pipeline.asl.json"
    asl_path.write_text(json.dumps(asl))
    template = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    template.write_text(text.replace("DefinitionUri: statemachine/pipeline.asl.json", f"DefinitionUri: {asl_path}"))
    assert template.read_text() != text
    return template


def test_a_queue_longer_than_the_machine_s_timeout_ends_in_results(tmp_path):
    template = _short_lived_template(tmp_path, timeout_s=40, job_life_s=25)
    pipeline, stack = build(("--qps", "5", "--time-scale", "0.01"), {"ApiQps": "5"}, template=template)
    with stack:
        keys = [f"incoming/idphoto/queue/q{i:02}.jpg" for i in range(UPLOADS)]
        for key in keys:
            pipeline.upload(key, images.portrait())
        queued = _status_when(pipeline, tmp_path, lambda r: r["in_flight"].get("waiting for a create", 0) >= 20)
        records = {key: pipeline.record(key, timeout_s=90) for key in keys}
        ended = _status_when(pipeline, tmp_path, lambda r: r["in_flight_total"] == 0)
        arns = [e["executionArn"] for e in pipeline.executions()]
        statuses = [pipeline.sfn.describe_execution(executionArn=arn)["status"] for arn in arns]
        tasks = pipeline.mock.task_times()
    failed = {key: record for key, (kind, record) in records.items() if kind != "result"}
    assert failed == {}
    assert "TIMED_OUT" not in statuses
    assert len(statuses) > UPLOADS  # the queue outlived some executions: they handed over
    assert len(tasks) == UPLOADS  # one paid task per upload: handing over never creates twice
    # picwish-ops status saw the queue and when it ends (the create lane's end: ~0.42 s a create at QPS 5),
    # then every upload ended, each started and paid once although some were handed over.
    assert 5 < queued["queue_ends_in_s"] < 25
    assert (ended["succeeded"], ended["failed"], ended["in_flight"]) == (UPLOADS, {}, {})
    assert ended["credits"] == UPLOADS * get_operation("idphoto").credits


def _status_when(pipeline, tmp_path, wanted, timeout_s: float = 90) -> dict:
    """`picwish-ops status` of the stack, asked until `wanted(report)` holds."""
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(stack_info(pipeline)))
    target = Target.local(info)
    deadline = time.monotonic() + timeout_s
    while not wanted(report := status(target, datetime.now(UTC) - timedelta(minutes=10))):
        assert time.monotonic() < deadline, report
        time.sleep(0.2)
    return report
