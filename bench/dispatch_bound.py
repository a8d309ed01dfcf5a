"""What deciding late could give a trickle, at best: one dispatcher hands each moment the API's rolling window
admits to the most urgent call wanted by then, with the layer's own poll planning, the mock's progress model and
no Step Functions or Lambda delays. A bound for the question whether the reserve-ahead slot table
(`scheduler.slot_table`) should give way to a central dispatcher; the answer is in docs/decisions.md ("What the
trickle's p95 is short of").

    python -m bench.dispatch_bound --n 160 --seeds 11-30 [--creates-last]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field

from bench import measure
from bench.simulate import ANSWER_S, EPOCH, SUBMIT_S, Job, add_workload_args, workloads
from bench.workload import Upload
from mock_server.config import MockConfig
from mock_server.progression import Progression
from picwish_pipeline.config import PipelineSettings
from picwish_pipeline.scheduler import belief, plan
from picwish_pipeline.scheduler.plan import Schedule
from picwish_pipeline.scheduler.slot_table import SlotLimiter
from picwish_visual.catalog import OPERATIONS

# The order calls are served in, most urgent first. Today's slot table: a poll expected to find its task done
# keeps its slot, a create takes a reading's, a reading takes what is left.
AIMED, CREATE, READING = 0, 1, 2
CREATES_LAST = 3


@dataclass
class _Want:
    at: float
    job: Job
    create: bool
    spare_until: float | None = None

    def rank(self, now: float, creates_last: bool) -> tuple[int, float]:
        if self.create:
            return (CREATES_LAST if creates_last else CREATE), self.at
        return (READING if plan.spares(now, self.spare_until) else AIMED), self.at


@dataclass
class Dispatcher:
    uploads: list[Upload]
    qps: float = 2.0
    creates_last: bool = False
    margin_s: float = SlotLimiter.margin_s
    now: float = EPOCH
    calls: list[float] = field(default_factory=list)
    schedule: Schedule = field(default_factory=lambda: Schedule(None, {}))  # no create lane: the learned durations

    def run(self) -> list[Job]:
        progression = Progression(MockConfig(), clock=lambda: self.now)
        settings = PipelineSettings(rate_table="none", qps=self.qps)
        jobs = [Job(u) for u in self.uploads]
        wants = [_Want(EPOCH + job.upload.at_s + SUBMIT_S, job, True) for job in jobs]
        per_second = max(1, math.ceil(self.qps))
        while wants:
            # The first moment the API's window admits one more call, and something is wanted by then. Never before
            # the last call: if it went when the window allowed, the window's next moment is no earlier; if it went
            # at the moment it was wanted, nothing still wanted is earlier than that.
            admitted = self.calls[-per_second] + 1 + self.margin_s if len(self.calls) >= per_second else -math.inf
            self.now = max(admitted, min(w.at for w in wants))
            want = min((w for w in wants if w.at <= self.now), key=lambda w: w.rank(self.now, self.creates_last))
            wants.remove(want)
            self.calls.append(self.now)
            job = want.job
            if want.create:
                job.created(self.now)
                durations = plan.belief_of(self.schedule, OPERATIONS[job.upload.operation], 1.0)
                first = plan.first_poll(self.now, durations, busy=False)
                wants.append(_Want(first.at, job, False, first.spare_until))
                continue
            assert job.task is not None
            step = progression.look(job.task)
            answer = job.answered(step, progression, self.now, self.now + ANSWER_S, self.schedule, settings)
            if isinstance(answer, belief.Durations):
                learned = {**self.schedule.durations, job.task.operation.name: answer.to_item()}
                self.schedule = Schedule(None, learned)
            else:
                wants.append(_Want(answer.at, job, False, answer.spare_until))
        return jobs


def report(jobs: list[Job]) -> dict:
    """The detection lag (the task's end to the poll that saw it done), and what the user waits: the create's wait
    (from when the create step would start) and the upload to the poll that saw the task done."""
    rows = [
        (j.lag, j.task.completed, j.created_at, EPOCH + j.upload.at_s)
        for j in jobs
        if j.lag is not None and j.task is not None and j.task.completed is not None and j.created_at is not None
    ]
    lags = [lag for lag, _, _, _ in rows]
    waits = [created - (uploaded + SUBMIT_S) for _, _, created, uploaded in rows]
    totals = [ended + lag - uploaded for lag, ended, _, uploaded in rows]
    return {
        "tasks": len(rows),
        "lag_p50_s": measure.percentile(lags, 0.5),
        "lag_p95_s": measure.percentile(lags, 0.95),
        "polls_per_image": round(sum(j.polls for j in jobs) / max(1, len(jobs)), 3),
        "create_wait_p95_s": measure.percentile(waits, 0.95),
        "upload_to_done_p50_s": measure.percentile(totals, 0.5),
        "upload_to_done_p95_s": measure.percentile(totals, 0.95),
        "lags_s": [round(x, 3) for x in lags],
        "totals_s": [round(x, 3) for x in totals],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dispatch_bound", description=__doc__.splitlines()[0])
    add_workload_args(p, n=160, seeds="11-15")
    p.add_argument("--creates-last", action="store_true", help="creates wait for every poll wanted (not only aimed)")
    args = p.parse_args(argv)
    lags: list[float] = []
    totals: list[float] = []
    for seed, uploads in workloads(args, "trickle"):
        one = report(Dispatcher(uploads, qps=args.qps, creates_last=args.creates_last).run())
        lags += one.pop("lags_s")
        totals += one.pop("totals_s")
        print(json.dumps({"seed": seed, **one}), flush=True)
    pooled = {
        "pooled_tasks": len(lags),
        "lag_p50_s": measure.percentile(lags, 0.5),
        "lag_p95_s": measure.percentile(lags, 0.95),
        "lag_p95_interval_s": measure.quantile_interval(lags, 0.95),
        "upload_to_done_p50_s": measure.percentile(totals, 0.5),
        "upload_to_done_p95_s": measure.percentile(totals, 0.95),
    }
    print(json.dumps(pooled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
