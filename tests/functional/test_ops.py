"""picwish-ops on the local stack: `status` counts a known mix exactly, and `redrive` turns an injected failure
into a result once the fault is gone — never an upload the pipeline refused, never an ambiguous create unless
asked."""

from __future__ import annotations

import json
import time

from offline.lambdas import LambdaCrash
from picwish_visual.catalog import get_operation
from tests.support import images


def posts(pipeline, filename: str) -> int:
    return sum(1 for e in pipeline.mock.requests(method="POST") if filename in json.dumps(e.get("fields", {})))


def test_status_counts_a_known_mix_exactly(pipeline, ops):
    pipeline.mock.add_rule(filename="slow.jpg", polls=8)  # done at its 8th poll: in flight for seconds
    pipeline.mock.add_rule(filename="refused.jpg", state=-7)
    pipeline.upload("incoming/idphoto/mix/slow.jpg", images.portrait())
    done = [f"incoming/idphoto/mix/ok{i}.jpg" for i in range(3)] + ["incoming/idphoto/mix/refused.jpg"]
    for key in done:
        pipeline.upload(key, images.portrait())
    pipeline.upload("incoming/correction/mix/broken.jpg", b"not an image at all")
    ended = [pipeline.record(key)[1] for key in [*done, "incoming/correction/mix/broken.jpg"]]

    report = ops("status", "--since", "10m")
    assert (report["in_flight_total"], report["in_flight"]) == (1, {"processing": 1})
    assert report["queue_ends_in_s"] is None  # nothing waits for a create
    assert report["succeeded"] == 3
    assert report["failed"] == {"task failed": 1, "invalid input": 1}
    assert report["api_calls"] == sum(int(r.get("api_calls") or 0) for r in ended)
    assert report["dead_letters"] == 0
    assert report["credits"] == 5 * get_operation("idphoto").credits  # five tasks made (the refused one too)

    kind, _ = pipeline.record("incoming/idphoto/mix/slow.jpg", timeout_s=60)
    assert kind == "result"
    for _ in range(50):  # the execution ends a moment after its record
        report = ops("status", "--since", "10m")
        if report["in_flight_total"] == 0:
            break
        time.sleep(0.1)
    assert (report["in_flight_total"], report["in_flight"], report["succeeded"]) == (0, {}, 4)


def test_redrive_reruns_a_failure_once_the_fault_is_gone_and_nothing_it_should_not(pipeline, ops):
    pipeline.mock.add_rule(filename="flaky.jpg", state=-7, times=1)  # fails once, then the fault is gone
    pipeline.mock.add_rule(filename="unsure.jpg", create_status=500, times=1)
    uploads = {name: f"incoming/idphoto/redrive/{name}" for name in ("flaky.jpg", "unsure.jpg", "broken.jpg")}
    pipeline.upload(uploads["flaky.jpg"], images.portrait())
    pipeline.upload(uploads["unsure.jpg"], images.portrait())
    pipeline.upload(uploads["broken.jpg"], b"not an image at all")
    reasons = {name: pipeline.record(key)[1]["reason"] for name, key in uploads.items()}
    assert reasons == {"flaky.jpg": "task failed", "unsure.jpg": "ambiguous create", "broken.jpg": "invalid input"}

    planned = ops("redrive", "--prefix", "incoming/idphoto/redrive/")
    decisions = {c["upload"].rsplit("/", 1)[-1]: c["decision"] for c in planned["candidates"]}
    assert decisions["flaky.jpg"] == "redrive"
    assert decisions["unsure.jpg"].startswith("skip: ambiguous create")
    assert decisions["broken.jpg"].startswith("skip: invalid input")
    assert planned["dry_run"] and planned["redriven"] == []
    assert posts(pipeline, "flaky.jpg") == 1  # a dry run changes nothing

    with_ambiguous = ops("redrive", "--prefix", "incoming/idphoto/redrive/", "--include-ambiguous")
    assert {c["upload"]: c["decision"] for c in with_ambiguous["candidates"]}[uploads["unsure.jpg"]] == "redrive"

    ran = ops("redrive", "--prefix", "incoming/idphoto/redrive/", "--reason", "task failed", "--yes")
    assert ran["redriven"] == [uploads["flaky.jpg"]]
    kind, record = pipeline.record(uploads["flaky.jpg"], wanted="result", timeout_s=60)
    assert kind == "result" and record["outcome"] == "succeeded"
    assert posts(pipeline, "flaky.jpg") == 2  # the failed task and the one that worked
    after = ops("redrive", "--prefix", "incoming/idphoto/redrive/")
    assert uploads["flaky.jpg"] not in {c["upload"] for c in after["candidates"]}  # its failure record is gone
    assert posts(pipeline, "unsure.jpg") == 1  # never run again without --include-ambiguous and --yes


def test_dlq_shows_an_upload_whose_retries_failed_and_re_drives_it_once_the_fault_is_gone(pipeline, ops):
    submit = pipeline.stack.functions()["SubmitFunction"]
    key = "incoming/idphoto/dlq/stuck.jpg"

    def dies(point, event, params=None):
        if point == "before" and "stuck.jpg" in json.dumps(event):
            raise LambdaCrash("submit died")

    pipeline.runtime.faults[submit] = dies
    pipeline.upload(key, images.portrait())
    deadline = time.monotonic() + 30
    while not (shown := ops("dlq"))["messages"]:  # after Lambda's two retries
        assert time.monotonic() < deadline, "nothing reached the dead-letter queue"
        time.sleep(0.2)
    [message] = shown["messages"]
    assert (message["function"], message["keys"], shown["dry_run"]) == ("submit", [key], True)
    assert "submit died" in message["error"]
    assert ops("dlq")["messages"] == shown["messages"]  # a dry run leaves the message where it was
    assert ops("status", "--since", "10m")["dead_letters"] == 1
    assert posts(pipeline, "stuck.jpg") == 0

    del pipeline.runtime.faults[submit]
    assert ops("dlq", "--yes")["redriven"] == 1
    kind, record = pipeline.record(key, wanted="result", timeout_s=60)
    assert (kind, record["outcome"], posts(pipeline, "stuck.jpg")) == ("result", "succeeded", 1)
    assert ops("dlq")["messages"] == []
