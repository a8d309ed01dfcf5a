"""What the steps hand each other through the state machine, typed: the job, the create's and the poll's state,
and one step's input. Dicts exist only at the Lambda boundary (`from_dict` / `to_dict`); the dict form leaves out
what is unset, so a step's output stays small and the state machine reads the same paths."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Self, cast

from picwish_visual.catalog import Operation, get_operation

from .uploads import JobPath, UploadRef, parse_job_path

UPLOAD, BACKFILL = "upload", "backfill"  # a job's intake


def _compact(obj: Any) -> dict[str, Any]:
    """The dataclass as a dict without the fields left unset (None)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) is not None}


def _known(cls: type, data: dict[str, Any] | None) -> dict[str, Any]:
    """The keys of `data` that are fields of `cls`: a state written by an older version still reads."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in (data or {}).items() if k in names}


@dataclass(frozen=True)
class Job:
    """One upload and what it asks for: the operation (as an object), its options, its masks' keys."""

    upload: UploadRef
    operation: Operation
    options: dict[str, Any] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)  # slot -> key in the input bucket
    mask_versions: dict[str, str] = field(default_factory=dict)  # slot -> the version submit checked
    ignored_metadata: list[str] = field(default_factory=list)
    intake: str = UPLOAD  # how the job came: an upload's event, or a backfill of what was already in S3

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            upload=UploadRef(**data["upload"]),
            operation=get_operation(data["operation"]),
            options=dict(data.get("options") or {}),
            masks=dict(data.get("masks") or {}),
            mask_versions=dict(data.get("mask_versions") or {}),
            ignored_metadata=list(data.get("ignored_metadata") or []),
            intake=str(data.get("intake") or UPLOAD),
        )

    @property
    def path(self) -> JobPath:
        """Where the job's results and records go. Submit made the job from a key under `incoming/`."""
        path = parse_job_path(self.upload.key)
        if path is None:
            raise ValueError(f"not an upload key: {self.upload.key!r}")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {
            "upload": self.upload.to_dict(),
            "operation": self.operation.name,
            "options": self.options,
            "masks": self.masks,
            **({"mask_versions": self.mask_versions} if self.mask_versions else {}),
            "ignored_metadata": self.ignored_metadata,
            **({"intake": self.intake} if self.intake != UPLOAD else {}),
        }


@dataclass(frozen=True)
class Waiting:
    """The slot a step waits for: its time, and the whole seconds Step Functions waits before the step runs."""

    slot_at: float
    wait_s: int
    spare: bool = False  # the call may give its slot up to one that cannot wait (a spare slot: `scheduler`)


class _StepState:
    """What the create and poll states share: read from and written to the execution's dict, and a copy of
    themselves waiting for a QPS slot."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        return cls(**_known(cls, data))

    def to_dict(self) -> dict[str, Any]:
        return _compact(self)

    def waiting(self, wait: Waiting) -> Self:
        return replace(cast(Any, self), slot_at=wait.slot_at, wait_s=wait.wait_s, spare=wait.spare or None)


@dataclass(frozen=True)
class CreateState(_StepState):
    """The create's state. `status`: new, wait (for `slot_at`), created (with the task) or failed (with why);
    `resume` (with `task_id`) when a redrive hands in a task already paid for."""

    status: str = "new"
    throttles: int = 0  # 429s so far: they spent budget too
    api_calls: int = 0
    slot_at: float | None = None
    wait_s: int | None = None
    spare: bool | None = None  # the slot's call may give way (the first poll's, once created)
    refresh_key: bool | None = None  # the next attempt reads the API key again (a 401 may mean it was rotated)
    handovers: int | None = None  # executions before this one that held the slot (`picwish_pipeline.handover`)
    budget_used: float | None = None  # percent of the credit budget spent, when a create waits for it
    task_id: str | None = None
    created_at: float | None = None
    deadline_at: float | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class PollState(_StepState):
    """The poll's state. `phase`: processing (wait `wait_s` for `slot_at`), done (with the outputs), failed
    (with `failure`) or timeout; the counts carry on from poll to poll."""

    phase: str = "processing"
    state: Any = 0  # the API's state code as sent (an undocumented one too)
    polls: int = 0
    throttles: int | None = None  # None until the first poll, which carries the create's counts on
    api_calls: int | None = None
    errors: int = 0  # polls in a row that got no answer
    last_error: dict[str, Any] | None = None
    polled_at: float | None = None
    progress: int | None = None
    slot_at: float | None = None
    wait_s: int | None = None
    spare: bool | None = None  # the next poll is a reading that may give its slot up
    refresh_key: bool | None = None
    outputs: dict[str, dict[str, str]] | None = None  # name -> {"url": …} or {"key": …} (written already)
    completed_at: float | None = None
    task_created_at: float | None = None
    failure: dict[str, Any] | None = None  # {"reason", "error"}


@dataclass(frozen=True)
class StepInput:
    """What the state machine passes a Task: the job, the state so far, the execution's name, and — for the
    failure step — what failed (`failure` from finalize, `error` from a Catch). The create step also gets when
    its execution started and how long into it a create may wait (`picwish_pipeline.handover`)."""

    job: Job
    execution: str | None = None
    machine: str | None = None  # $$.StateMachine.Id
    started_at: str | None = None  # $$.Execution.StartTime, ISO 8601
    queue_horizon_s: float | None = None
    create: CreateState = field(default_factory=CreateState)
    poll: PollState = field(default_factory=PollState)
    error: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepInput:
        return cls(
            job=Job.from_dict(data["job"]),
            execution=data.get("execution"),
            machine=data.get("machine"),
            started_at=data.get("started_at"),
            queue_horizon_s=data.get("queue_horizon_s"),
            create=CreateState.from_dict(data.get("create")),
            poll=PollState.from_dict(data.get("poll")),
            error=data.get("error"),
            failure=data.get("failure"),
        )

    def to_dict(self) -> dict[str, Any]:
        """As the execution carries it; `error` always, as the Catch paths that write it read it too."""
        return {
            "job": self.job.to_dict(),
            **({"execution": self.execution} if self.execution is not None else {}),
            "create": self.create.to_dict(),
            "poll": self.poll.to_dict(),
            "error": self.error,
            **({"failure": self.failure} if self.failure is not None else {}),
        }


@dataclass(frozen=True)
class Outcome:
    """How a job ended, as the finalize or failure step reports it: where its result or failure record is."""

    status: str  # succeeded / failed / already recorded / ignored
    result_prefix: str | None = None
    outputs: dict[str, str] | None = None  # output name -> key written
    reason: str | None = None
    failure_key: str | None = None
    processing_s: float | None = None  # the task's time at the API, by its stamps
    overhead_s: float | None = None  # from the API's "completed" stamp to the result written

    def to_dict(self) -> dict[str, Any]:
        return _compact(self)
