"""A backfill of a catalog already in S3, on the local stack, with live uploads arriving while it runs:

    .venv/bin/python -m bench.backfill [--n 1000] [--qps 20] [--time-scale 0.05] [--live 60] [--jobs N] [--seed 1]

The catalog: images never processed, some processed before (a result), some failed before, some uploaded again
since their result (the new version's event never sent), one refused. First a trickle of live uploads alone (the
baseline), then the dry run's bill, then the backfill with the same trickle arriving during it. Reports whether
every key ends in one record of its newest version, what was paid (against the bill and per key), the live
uploads' upload → record p50 / p95 against the baseline's, the wall time and the peak memory. `--check` says no
when a promise is broken (anything lost, paid for a key that had its result, a bill the mock's journal does not
match, a live p95 more than twice the baseline's, a dead letter)."""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from bench import measure
from offline.__main__ import stack_info
from offline.harness import build
from offline.record_reader import read_records
from ops import backfill
from ops.status import dead_letters, status
from ops.target import Target
from picwish_visual.catalog import get_operation
from tests.support import images

PREFIX = "incoming/"
OPERATIONS = ("idphoto", "correction", "clothing-segmentation")  # the three the docs give a price for
WARM_UP = 8  # uploads before anything is measured: each function's sandboxes started
SHARES = {"done": 0.10, "failed": 0.05, "replaced": 0.05, "refused": 0.002}  # the rest: never processed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    p.add_argument("--n", type=int, default=1000, help="images in the catalog")
    p.add_argument("--qps", type=float, default=20.0)
    p.add_argument("--time-scale", type=float, default=0.05)
    p.add_argument("--live", type=int, default=60, help="live uploads, alone and again during the backfill")
    p.add_argument("--live-interval", type=float, default=1.0, help="mean seconds between live uploads")
    p.add_argument("--jobs", type=int, help="the backfill's jobs in flight (default: picwish-ops backfill's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--check", action="store_true", help="exit 1 when a promise is broken")
    return p.parse_args(argv)


def catalog(n: int, rng: random.Random) -> dict[str, tuple[str, bytes]]:
    """key -> (what it is before the backfill, its bytes)."""
    kinds = [k for k, share in SHARES.items() for _ in range(max(1, round(n * share)))]
    kinds += ["never"] * (n - len(kinds))
    rng.shuffle(kinds)
    found = {}
    for i, kind in enumerate(kinds):
        op = OPERATIONS[i % len(OPERATIONS)]
        body = b"not an image" if kind == "refused" else images.portrait(width=60 + i % 40, height=50 + i // 40 % 30)
        found[f"{PREFIX}{op}/catalog/{i:05}.jpg"] = (kind, body)
    return found


def prepare(pipeline, items: dict[str, tuple[str, bytes]], progress) -> None:
    """The bucket as a team adopting the pipeline has it: some keys went through it, the rest were already there."""
    for key, (kind, _body) in items.items():
        if kind == "failed":
            pipeline.mock.add_rule(filename=key.rsplit("/", 1)[1], state=-1)
    went = [key for key, (kind, _b) in items.items() if kind in ("done", "failed", "replaced", "refused")]
    for key in went:
        pipeline.upload(key, items[key][1])
    for number, key in enumerate(went, 1):
        pipeline.record(key, timeout_s=600)
        if number % 50 == 0:
            progress(f"{number} of {len(went)} processed before the backfill")
    pipeline.mock.clear_rules()
    silent = {key: body for key, (kind, body) in items.items() if kind == "never"}
    silent |= {key: items[key][1] + b"\0" for key, (kind, _b) in items.items() if kind == "replaced"}
    pipeline.place(silent)


def trickle(pipeline, count: int, interval: float, rng: random.Random, tag: str) -> dict[str, dict[str, float]]:
    """`count` live uploads, Poisson-spaced; key -> its upload → record seconds and their phases."""
    keys = [f"{PREFIX}idphoto/live/{tag}-{i:03}.jpg" for i in range(count)]
    sent: dict[str, float] = {}
    first_invocation = len(pipeline.runtime.invocations)
    for i, key in enumerate(keys):
        sent[key] = time.time()
        pipeline.upload(key, images.portrait(width=100 + i % 50))
        time.sleep(rng.expovariate(1 / interval))
    took = {}
    for key in keys:
        _kind, record = pipeline.record(key, timeout_s=900)
        took[key] = phases(record, sent[key])
    for key, seconds in _cold_starts(pipeline.runtime.invocations[first_invocation:], keys).items():
        took[key]["cold_starts"] = seconds
    return took


def _cold_starts(invocations: list, keys: list[str]) -> dict[str, float]:
    """Each upload's seconds of sandbox start in its own steps (a new sandbox, when the warm ones were busy)."""
    names = {key.rsplit("/", 1)[1]: key for key in keys}
    found = dict.fromkeys(keys, 0.0)
    for invocation in invocations:
        if invocation.cold_start_ms:
            seen = json.dumps(invocation.event)
            for name, key in names.items():
                if name in seen:
                    found[key] += invocation.cold_start_ms / 1000
    return found


def phases(record: dict, sent: float) -> dict[str, float]:
    """Upload → record, and its two parts: to the create's answer (the event, submit, the create step), and from
    there to the record (the task, the polls, finalize). The API's own stamps are whole seconds: not used."""
    created = datetime.fromisoformat(record["timestamps"]["task_created"]).timestamp()
    written = measure.written_at(record)
    return {"total": written - sent, "to_created": created - sent, "created_to_record": written - created}


def settle(pipeline, target: Target, arn: str, keys: list[str], timeout_s: float) -> dict[str, tuple[str, dict]]:
    """Wait for the backfill's execution, then for every key's record of its newest version."""
    deadline = time.monotonic() + timeout_s
    while pipeline.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the backfill did not end"
        time.sleep(1)
    newest = {k: pipeline.s3.head_object(Bucket=target.input_bucket, Key=k)["VersionId"] for k in keys}
    records: dict[str, tuple[str, dict]] = {}
    while len(records) < len(keys):
        assert time.monotonic() < deadline, f"{len(keys) - len(records)} keys without their newest record"
        for key in keys:
            if key not in records:
                found = [r for r in read_records(pipeline.s3, target.output_bucket, key) if _newest(r, newest[key])]
                if found:
                    records[key] = found[0]
        time.sleep(1)
    return records


def _newest(found: tuple[str, dict], version: str) -> bool:
    return (found[1].get("source") or {}).get("version_id") == version


def verdict(report: dict[str, Any]) -> list[str]:
    problems = []
    if report["keys_without_one_record_of_newest"]:
        problems.append(f"{report['keys_without_one_record_of_newest']} keys without one record of their newest")
    if report["paid_for_keys_with_a_result"]:
        problems.append(f"{report['paid_for_keys_with_a_result']} tasks paid for keys that had their result")
    if report["credits_paid"] != report["bill"]["credits"]:
        problems.append(f"paid {report['credits_paid']} credits against a bill of {report['bill']['credits']}")
    if report["live"]["p95_ratio"] > 2:
        problems.append(f"live uploads' p95 {report['live']['p95_ratio']}x the baseline's")
    if report["dead_letters"]:
        problems.append(f"{report['dead_letters']} dead letters")
    return problems


def run(args: argparse.Namespace, progress) -> dict[str, Any]:
    rng = random.Random(args.seed)
    items = catalog(args.n, rng)
    mock_args = ("--qps", str(args.qps), "--time-scale", str(args.time_scale), "--render-max-side", "512")
    parameters = {"ApiQps": str(args.qps), "WaitScale": str(args.time_scale)}
    pipeline, stack = build(mock_args, parameters, server=True)
    with stack:
        target = _target(pipeline)
        progress("warming the stack (its sandboxes start on the first uploads) …")
        trickle(pipeline, WARM_UP, 0.2, rng, "warm")  # the trickle alone is then measured warm, as the one during
        progress("the live trickle alone …")
        alone = trickle(pipeline, args.live, args.live_interval, rng, "alone")
        prepare(pipeline, items, progress)
        return measured(args, pipeline, target, items, alone, rng, progress)


def measured(args, pipeline, target: Target, items: dict, alone: dict, rng, progress) -> dict[str, Any]:
    decisions, sizes = backfill.plan(target, pipeline.s3, "", reprocess=False, progress=progress)
    decisions = [d for d in decisions if d.key in items]  # the live uploads are not the catalog's
    bill = backfill.Bill(PREFIX, decisions, sizes, target.qps, 0.0).summary(target.live_share)
    paid_before, journal_before = _paid(pipeline), len(pipeline.mock.requests(method="POST"))
    started = time.time()
    jobs = args.jobs or backfill.jobs_for(target)
    arn = backfill.start(target, pipeline.sfn, "", reprocess=False, jobs=jobs)
    live: dict[str, dict[str, float]] = {}
    during = lambda: live.update(trickle(pipeline, args.live, args.live_interval, rng, "during"))  # noqa: E731
    feeder = threading.Thread(target=during)
    feeder.start()
    records = settle(pipeline, target, arn, list(items), args.timeout)
    feeder.join()
    wall = time.time() - started
    posts = pipeline.mock.requests(method="POST")[journal_before:]
    paid = measure.paid_per_upload(posts, lambda e: measure.upload_key_of(e, {}))
    done = {key for key, (kind, _b) in items.items() if kind == "done"}
    report = {
        "settings": vars(args) | {"jobs": jobs},
        "bill": {k: v for k, v in bill.items() if k != "skip"} | {"skip": dict(bill["skip"])},
        "credits_paid": _paid(pipeline) - paid_before - _live_credits(live),
        "paid_for_keys_with_a_result": sum(n for key, n in paid.items() if key and key.split("@")[0] in done),
        "keys_without_one_record_of_newest": len(items) - len(records),
        "outcomes": dict(collections.Counter(kind for kind, _r in records.values())),
        "live": _live(alone, live),
        "backfill_wall_s": round(wall, 1),
        "images_per_s": round(sum(1 for d in decisions if d.action != "skip") / wall, 2),
        "dead_letters": dead_letters(target) or 0,
        "status": status(target, datetime.now(UTC) - timedelta(hours=2)),
    }
    return report


def _live(alone: dict[str, dict[str, float]], during: dict[str, dict[str, float]]) -> dict[str, Any]:
    runs = (("alone", alone), ("during", during))
    quantiles = {
        f"{name}_{label}_s": measure.percentile((p["total"] for p in values.values()), q) or 0.0
        for name, values in runs
        for label, q in (("p50", 0.5), ("p95", 0.95))
    }
    ratio = round(quantiles["during_p95_s"] / max(quantiles["alone_p95_s"], 1e-9), 2)
    # Where the time goes: each phase's median, alone and during.
    parts = {
        f"{name}_p50_{part}_s": round(measure.percentile((p[part] for p in values.values()), 0.5) or 0.0, 3)
        for name, values in runs
        for part in ("to_created", "created_to_record")
    }
    # The slowest three of each, in parts: what a p95 of a few dozen uploads is made of.
    parts |= {
        f"{name}_slowest": [
            {part: round(value, 3) for part, value in p.items()}
            for p in sorted(values.values(), key=itemgetter("total"))[-3:]
        ]
        for name, values in runs
    }
    # Each upload's seconds too: a few dozen uploads make a noisy p95, and runs are pooled from these.
    samples = {f"{name}_s": sorted(round(p["total"], 3) for p in values.values()) for name, values in runs}
    return quantiles | {"p95_ratio": ratio} | parts | samples


def _paid(pipeline) -> int:
    return sum(pipeline.mock.credits()["credits"].values())


def _live_credits(live: dict[str, float]) -> int:
    return len(live) * (get_operation("idphoto").credits or 1)  # the live uploads are idphoto's


def _target(pipeline) -> Target:
    return Target.from_info(stack_info(pipeline))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console, sys.stdout = sys.stdout, sys.stderr  # the functions' logs; the JSON alone goes to the console

    def progress(line: str) -> None:
        sys.stderr.write(f"bench.backfill: {line}\n")

    try:
        report = run(args, progress)
    finally:
        sys.stdout = console
    problems = verdict(report)
    report["problems"] = problems
    print(json.dumps(report, indent=2, default=str))
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
