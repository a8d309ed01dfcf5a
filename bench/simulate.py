"""A fast replay of the poll timing, for judging a change to it in minutes instead of an hour of benchmark runs:
the benchmark's workload, the mock's own progress model, the layer's own poll planning and slot table (on an
in-process DynamoDB), on a virtual clock. The Step Functions loop and the Lambda steps around them are imitated by
a few fixed delays, so its figures guide tuning only; the figures reported are the real benchmark's
(`python -m bench`).

    python -m bench.simulate --scenario trickle --n 160 --seeds 11-15
    python -m bench.simulate --drop 100000 --qps 2 --seeds 1   # a catalog drop

Beside the lags it counts, per image, the slot table's DynamoDB requests (as made), and the state transitions and
Lambda invocations the state machine would make (by the states each step passes through, as
statemachine/definition.py wires them), and whether any execution outlived the machine's timeout.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import boto3
from moto import mock_aws

from bench import measure
from bench.slot_memory import MemorySlotTable
from bench.workload import Upload, parse_mix, parse_shapes, plan
from mock_server.config import MockConfig
from mock_server.forms import CreateRequest
from mock_server.progression import Progression, Step, Task
from mock_server.scenarios import Outcome
from offline.stack import table_keys
from picwish_pipeline.config import PipelineSettings
from picwish_pipeline.create import CREATE_LANE_GAP
from picwish_pipeline.scheduler import belief
from picwish_pipeline.scheduler.calling import READY_LEAD_S, SLOT_LEAD_S
from picwish_pipeline.scheduler.plan import NextPoll, Schedule, belief_of, first_poll, plan_next_poll, spares
from picwish_pipeline.scheduler.slot_table import SlotLimiter
from picwish_visual.catalog import OPERATIONS
from statemachine.definition import JOB_LIFE_S, MACHINE_TIMEOUT_S

# Delays of the local stack, set by hand (guessed, neither measured nor fitted): the upload to the create step's
# first run; a state transition and a warm invocation; a call's answer to the step's next reservation. With them,
# the replay's lags come within 0.13 s (p50) and 0.27 s (p95) of real runs of the same seeds, and its polls per
# image within 0.08 (README, "A replay of the poll timing").
SUBMIT_S = 0.45
TRANSITION_S = 0.08
ANSWER_S = 0.03
TABLE = "slots"
EPOCH = 1.8e9  # the virtual clock's start: a Unix time, as the slot table and the create lane expect


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    run: Callable[[], None] = field(compare=False)


@dataclass
class Job:
    """One upload's task as the poll step sees it, in either replay: the create's moment, the previous poll's
    reading, and what the run measures of it (polls, readings displaced, the lag, a `trace` of its plans, slots,
    displacements and calls)."""

    upload: Upload
    task: Task | None = None
    created_at: float | None = None
    reading: tuple[float, int] | None = None  # the (elapsed, progress) of the last poll, when it saw progress
    polled_at: float | None = None
    polls: int = 0
    displaced: int = 0
    lag: float | None = None  # from the task's end to the call that saw it done
    execution_started: float | None = None  # the current execution's start (a hand-over starts another)
    handovers: int = 0
    ended_at: float | None = None
    trace: list[tuple[str, float, float]] = field(default_factory=list)  # (what, when, the moment it concerns)

    def created(self, at: float) -> None:
        """The API's task, created at `at`: the upload's processing time and progress curve, as the mock runs it."""
        op = OPERATIONS[self.upload.operation]
        outcome = Outcome(
            processing=self.upload.processing_s,
            progress_curve=self.upload.progress_curve,
            progress_points=self.upload.progress_points,
        )
        request = CreateRequest(op, False, {})
        self.task = Task(self.upload.key, self.upload.key, op, request, outcome, at, self.upload.processing_s)
        self.created_at = at

    def answered(
        self,
        step: Step,
        progression: Progression,
        called_at: float,
        now: float,
        schedule: Schedule,
        settings: PipelineSettings,
    ) -> belief.Durations | NextPoll:
        """What the poll step makes of a poll's answer (`step`, looked at when called), at `now`. A task seen done
        ends as the mock ends it: its lag, and its operation's durations with it learned (from the API's
        whole-second timestamps, as the mock answers them). Else when to poll next, from this answer and the
        previous poll's reading only, as the poll step keeps them."""
        assert self.task is not None and self.created_at is not None
        self.polls += 1
        op = self.task.operation
        durations = belief_of(schedule, op, 1.0)
        if step.terminal:
            progression.end(self.task, step.state)
            ended = self.task.completed
            assert ended is not None
            self.lag = called_at - ended
            stamps = int(self.task.created), int(ended)
            return durations.learn(belief.completion_sample(self.created_at, self.polled_at, now, *stamps))
        earlier, self.polled_at = self.reading, now
        self.reading = (now - self.created_at, step.progress) if step.progress else None
        return plan_next_poll(
            op,
            1.0,
            schedule,
            durations,
            created_at=self.created_at,
            now=now,
            progress=step.progress,
            earlier=earlier,
            deadline=self.created_at + settings.deadline_for(op.name),
        )


class Simulation:
    """One run: each upload's create and polls as events on a virtual clock, each through the layer's slot table.
    Every job keeps a `trace` of its plans, slots, displacements and calls, to see where a lag came from."""

    def __init__(
        self,
        uploads: list[Upload],
        *,
        qps: float,
        client,
        machine_timeout_s: float = MACHINE_TIMEOUT_S,
        job_life_s: float = JOB_LIFE_S,
    ) -> None:
        self.now = EPOCH
        self.queue: list[_Event] = []
        self.seq = itertools.count()
        self.settings = PipelineSettings(rate_table=TABLE, qps=qps)
        self.limiter = SlotLimiter(TABLE, qps, client, clock=lambda: self.now)
        self.progression = Progression(MockConfig(), clock=lambda: self.now)
        self.calls: list[float] = []  # when each API call reached the API
        self.jobs = [Job(u) for u in uploads]
        self.qps = qps
        self.throttled = 0
        self.transitions = 0  # states entered, as the machine would enter them
        self.invocations = 0  # Task states run (Lambda invocations)
        self.requests = getattr(client, "requests", None)  # the slot table's requests, when it counts them
        self.machine_timeout_s, self.queue_horizon_s = machine_timeout_s, machine_timeout_s - job_life_s

    def at(self, moment: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.queue, _Event(max(moment, self.now), next(self.seq), run))

    def run(self) -> None:
        for job in self.jobs:
            self.at(EPOCH + job.upload.at_s + SUBMIT_S, lambda job=job: self._create(job))
        while self.queue:
            event = heapq.heappop(self.queue)
            self.now = event.at
            event.run()

    # -- the steps -----------------------------------------------------------------------------------------

    def _entered(self, states: int, tasks: int = 0) -> None:
        self.transitions += states
        self.invocations += tasks

    def _create(self, job: Job) -> None:
        job.execution_started = self.now
        self._entered(1, 1)  # CreateTask
        self._queue(job, self.limiter.reserve_create(CREATE_LANE_GAP))

    def _queue(self, job: Job, slot_at: float) -> None:
        """Wait for the create slot, or, past the execution's queue horizon, until the horizon and hand over."""
        assert job.execution_started is not None
        horizon = job.execution_started + self.queue_horizon_s
        if slot_at <= horizon:
            self._wait(slot_at, False, lambda: self._created(job), job, create=True)
            return
        self._entered(3, 1)  # Created?, WaitForCreateSlot (to the horizon), CreateTask
        self.at(horizon, lambda: self._hand_over(job, slot_at))

    def _hand_over(self, job: Job, slot_at: float) -> None:
        job.handovers += 1
        self._entered(3, 1)  # Created?, HandedOver; the next execution's CreateTask
        job.execution_started = self.now
        self._queue(job, slot_at)

    def _created(self, job: Job) -> None:
        job.created(self.now)
        self.now += ANSWER_S
        schedule = self.limiter.schedule()
        busy = schedule.busy(self.now)
        assert job.created_at is not None
        durations = belief_of(schedule, OPERATIONS[job.upload.operation], 1.0)
        self._planned(job, first_poll(job.created_at, durations, busy=busy), busy)

    def _poll(self, job: Job) -> None:
        assert job.task is not None
        step = self.progression.look(job.task)
        called, self.now = self.now, self.now + ANSWER_S
        schedule = self.limiter.schedule()
        answer = job.answered(step, self.progression, called, self.now, schedule, self.settings)
        if isinstance(answer, belief.Durations):
            self.limiter.learn(job.task.operation.name, answer)
            self._entered(4, 1)  # Done?, Finalize, Stored?, Stored
            job.ended_at = self.now + TRANSITION_S
        else:
            self._planned(job, answer, schedule.busy(self.now))

    def _planned(self, job: Job, plan_: NextPoll, busy: bool) -> None:
        slot_at = self.limiter.reserve(plan_.at, within=not busy, spare_until=plan_.spare_until)
        job.trace += [("planned", self.now, plan_.at), ("slot", self.now, slot_at)]
        self._entered(3, 1)  # Created? or Done?, WaitForFirstPoll or WaitForNextPoll, PollTask
        self._wait(slot_at, spares(slot_at, plan_.spare_until), lambda: self._poll(job), job)

    def _wait(self, slot_at: float, spare: bool, call: Callable[[], None], job: Job, create: bool = False) -> None:
        """As `calling.wait_for` and `call_in_slot`: Step Functions waits whole seconds, the step wakes, reads the
        send times shortly before the slot, announces its call (or learns a call that could not wait took its
        spare slot) and calls. A create that waits a whole second or more goes back to Step Functions first."""
        whole_s = max(0, math.floor(slot_at - self.now - SLOT_LEAD_S))
        if create and whole_s >= 1:
            self._entered(3, 1)  # Created?, WaitForCreateSlot, CreateTask
        woken = self.now + TRANSITION_S + whole_s
        self.at(max(woken, slot_at - READY_LEAD_S), lambda: self._announce(slot_at, spare, call, job))

    def _announce(self, slot_at: float, spare: bool, call: Callable[[], None], job: Job) -> None:
        ready = self.limiter.ready_at(slot_at)
        if self.limiter.missed(slot_at, at=ready):
            self._entered(3, 1)  # back through Step Functions to wait for the new slot
            self._wait(self.limiter.reserve(ready), False, call, job)
            return
        if not self.limiter.mark_called(slot_at, ready, spare=spare):
            job.displaced += 1
            job.trace.append(("displaced", self.now, slot_at))
            self._entered(3, 1)
            self._wait(self.limiter.reserve(ready, within=True), False, call, job)
            return
        self.at(ready, lambda: self._call(call, job))

    def _call(self, call: Callable[[], None], job: Job) -> None:
        job.trace.append(("call", self.now, self.now))
        window = [t for t in self.calls[-8:] if t > self.now - 1.0]
        if len(window) >= math.ceil(self.qps):
            self.throttled += 1  # the API would answer 429; counted, and (rare) let through
        self.calls.append(self.now)
        call()

    def budget_used(self) -> float | None:
        """The share of the QPS the calls took in the middle of the run (`measure.sustained_rate`: one slow task's
        last polls, minutes on, would make a whole run look idle): the trickle's readings buy latency with idle
        slots, and this says how many were left."""
        rate = measure.sustained_rate(self.calls)
        return None if rate is None else round(rate / self.qps, 3)

    def scale_figures(self) -> dict:
        """Per image: the state machine's transitions and invocations, the slot table's requests; how many jobs
        ended, outlived the machine's timeout or were handed over; images finished a second in the middle of the
        run against QPS / 2, the most the budget allows."""
        n = max(1, len(self.jobs))
        ends = [j.ended_at for j in self.jobs if j.ended_at is not None]
        lives = [j.ended_at - j.execution_started for j in self.jobs if j.ended_at and j.execution_started]
        rate = measure.sustained_rate(ends)
        creates = measure.sustained_rate(j.created_at for j in self.jobs if j.created_at is not None)
        return {
            "ended": len(ends),
            "timed_out": sum(1 for life in lives if life > self.machine_timeout_s),
            "handed_over": sum(1 for j in self.jobs if j.handovers),
            "transitions_per_image": round(self.transitions / n, 3),
            "invocations_per_image": round(self.invocations / n, 3),
            "slot_table_requests_per_image": None
            if self.requests is None
            else round(sum(self.requests.values()) / n, 3),
            "sustained_vs_qps_half": None if rate is None else round(rate / (self.qps / 2), 3),
            # the budget's pace itself: the ends' rate of a short drop is diluted by how processing times spread
            "creates_vs_qps_half": None if creates is None else round(creates / (self.qps / 2), 3),
            "last_end_h": round((max(ends) - EPOCH) / 3600, 2) if ends else None,
        }

    def report(self) -> dict:
        lags = [j.lag for j in self.jobs if j.lag is not None]
        polls = sum(j.polls for j in self.jobs)
        return {
            "tasks": len(lags),
            "lag_p50_s": measure.percentile(lags, 0.5),
            "lag_p95_s": measure.percentile(lags, 0.95),
            "polls_per_image": round(polls / max(1, len(self.jobs)), 3),
            "displaced_per_image": round(sum(j.displaced for j in self.jobs) / max(1, len(self.jobs)), 3),
            "over_qps": self.throttled,
            "budget_used": self.budget_used(),
            **self.scale_figures(),
            "lags_s": [round(x, 3) for x in lags],
        }


def simulate(uploads: list[Upload], qps: float = 2.0, *, table: str = "memory") -> dict:
    """One replay, the slot table in memory (`bench.slot_memory`, default) or on moto (`table="moto"`)."""
    if table == "memory":
        sim = Simulation(uploads, qps=qps, client=MemorySlotTable())
        sim.run()
        return sim.report()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName=TABLE, **table_keys("RateLimitTable"))
        sim = Simulation(uploads, qps=qps, client=client)
        sim.run()
        return sim.report()


def parse_seeds(text: str) -> list[int]:
    """A range (`11-30`) or a list (`1,2,3`)."""
    if "-" in text:
        low, high = (int(x) for x in text.split("-"))
        return list(range(low, high + 1))
    return [int(x) for x in text.split(",")]


def add_workload_args(p: argparse.ArgumentParser, *, n: int, seeds: str) -> None:
    """The benchmark's workload, as the replays take it: a seed gives the benchmark's own uploads."""
    p.add_argument("--n", type=int, default=n)
    p.add_argument("--interval", type=float, default=4.0)
    p.add_argument("--qps", type=float, default=2.0)
    p.add_argument("--seeds", default=seeds, help="a range (11-30) or a list (1,2,3)")
    p.add_argument("--mix", default="idphoto=1,correction=1,inpaint=1,retouching-collection=1,clothing-segmentation=1")
    p.add_argument("--progress", default="power,stall,late,steps,noisy")


def workloads(args: argparse.Namespace, scenario: str) -> Iterator[tuple[int, list[Upload]]]:
    """Each seed's uploads, drawn as the benchmark draws them, without rendering the images. A `drop` is a burst
    drawn without image sizes (drawing a size's pixels takes ~40 ms an upload: an hour at 100,000)."""
    mix, shapes = parse_mix(args.mix), parse_shapes(args.progress)
    drop = getattr(args, "drop", None)
    n, small = (drop, True) if drop else (args.n, False)
    for seed in parse_seeds(args.seeds):
        rng = random.Random(seed)
        yield (
            seed,
            plan(n, mix, rng, scenario=scenario, interval_s=args.interval, shapes=shapes, images=False, small=small),
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=("burst", "trickle"), default="trickle")
    p.add_argument("--drop", type=int, help="a catalog drop of this many uploads at once (a burst; overrides --n)")
    add_workload_args(p, n=40, seeds="1-3")
    args = p.parse_args(argv)
    pooled: list[float] = []
    for seed, uploads in workloads(args, "burst" if args.drop else args.scenario):
        report = simulate(uploads, args.qps)
        pooled += report.pop("lags_s")
        print(json.dumps({"seed": seed, **report}), flush=True)
    print(
        json.dumps(
            {
                "pooled_tasks": len(pooled),
                "lag_p50_s": measure.percentile(pooled, 0.5),
                "lag_p50_interval_s": measure.quantile_interval(pooled, 0.5),
                "lag_p95_s": measure.percentile(pooled, 0.95),
                "lag_p95_interval_s": measure.quantile_interval(pooled, 0.95),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
