"""Following uploads through the local stack: each job's live status (from its execution's history) until its
record lands, then everything downloaded to a folder."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from picwish_pipeline.uploads import parse_job_path

from .harness import Pipeline
from .record_reader import read_records


@dataclass
class Job:
    key: str
    title: str
    expect: str | None = None  # "result" / "failed:<reason>"; None when anything goes (the `run` command)
    extra_keys: list[str] = field(default_factory=list)
    status: str = "uploaded"
    state: object = None
    progress: int | None = None
    polls: int = 0
    kind: str | None = None  # "result" | "failed" once recorded
    record: dict = field(default_factory=dict)
    uploaded_at: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    @property
    def operation(self) -> str:
        return parse_job_path(self.key).operation

    @property
    def outcome(self) -> str | None:
        if self.kind == "failed":
            return f"failed:{self.record.get('reason')}"
        return self.kind

    @property
    def as_expected(self) -> bool:
        return self.kind is not None and (self.expect is None or self.outcome == self.expect)


class Tracker:
    def __init__(self, pipeline: Pipeline, jobs: list[Job]) -> None:
        self.pipeline = pipeline
        self.jobs = jobs
        self._arns: dict[str, str] = {}  # upload key → execution ARN
        self._seen: set[str] = set()

    def refresh(self) -> None:
        self._map_executions()
        for job in self.jobs:
            if job.kind is None:
                self._update(job)

    def _map_executions(self) -> None:
        sfn = self.pipeline.sfn
        for summary in self.pipeline.executions():
            arn = summary["executionArn"]
            if arn in self._seen:
                continue
            self._seen.add(arn)
            key = json.loads(sfn.describe_execution(executionArn=arn)["input"])["job"]["upload"]["key"]
            self._arns[key] = arn

    def _update(self, job: Job) -> None:
        for kind, record in read_records(self.pipeline.s3, self.pipeline.stack.output_bucket, job.key)[:1]:
            job.kind, job.record = kind, record
            job.polls = job.record.get("polls") or job.polls
            job.status = "stored" if kind == "result" else f"failed: {job.record.get('reason')}"
            job.progress = 100 if kind == "result" else job.progress
            job.seconds = time.monotonic() - job.uploaded_at
            return
        arn = self._arns.get(job.key)
        if arn is None:
            return
        events = self.pipeline.sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=25)["events"]
        for event in events:
            details = event.get("lambdaFunctionSucceededEventDetails") or event.get("taskSucceededEventDetails")
            if not details or not details.get("output"):
                continue
            output = json.loads(details["output"])
            if "polls" in output:
                job.state, job.progress, job.polls = output.get("state"), output.get("progress"), output["polls"]
                job.status = f"polling (state {job.state})"
            elif output.get("status") == "wait":
                job.status = "waiting for a QPS slot"
            elif output.get("status") == "created":
                job.status = "created"
            break

    @property
    def done(self) -> bool:
        return all(job.kind is not None for job in self.jobs)

    def wait(self, timeout_s: float, stream=None) -> None:
        view = LiveTable(self.jobs, stream) if stream is not None else None
        deadline = time.monotonic() + timeout_s
        while not self.done and time.monotonic() < deadline:
            self.refresh()
            if view:
                view.draw()
            time.sleep(0.3)
        self.refresh()
        if view:
            view.draw(final=True)

    def download(self, out: Path) -> None:
        """Inputs, masks, results and records into `out/` under their S3 keys."""
        s3, stack = self.pipeline.s3, self.pipeline.stack
        for job in self.jobs:
            for key in (job.key, *job.extra_keys):
                _save(out / "inputs" / key, s3.get_object(Bucket=stack.input_bucket, Key=key)["Body"].read())
        for prefix in ("results/", "failed/"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.output_bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=stack.output_bucket, Key=item["Key"])["Body"].read()
                    _save(out / item["Key"], body)


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class LiveTable:
    """A table redrawn in place on a terminal; on a pipe, one line per change."""

    def __init__(self, jobs: list[Job], stream=sys.stdout) -> None:
        self.jobs = jobs
        self.stream = stream
        self.tty = stream.isatty()
        self.drawn = 0
        self.last: dict[str, str] = {}

    def _line(self, job: Job) -> str:
        bar_width = 10
        filled = int((job.progress or 0) / 100 * bar_width)
        bar = "█" * filled + "·" * (bar_width - filled)
        mark = " " if job.kind is None else ("✓" if job.as_expected else "✗")
        return f"{mark} {job.key[9:][:46]:<46} {bar} {job.progress or 0:>3}%  polls {job.polls:<2} {job.status}"

    def draw(self, final: bool = False) -> None:
        lines = [self._line(job) for job in self.jobs]
        if self.tty:
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F")
            self.stream.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self.drawn = len(lines)
        else:
            for job, line in zip(self.jobs, lines, strict=True):
                if self.last.get(job.key) != job.status:
                    self.stream.write(line + "\n")
                    self.last[job.key] = job.status
        self.stream.flush()
