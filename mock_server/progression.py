"""How a task moves through its states — by time (its processing seconds, capped at the API's 180 s) or by
polls, through the documented states or a scripted sequence, with its progress curve — and when and how it ends.
Deterministic: the same task polled at the same moments answers the same."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from picwish_visual.catalog import Operation

from .config import MockConfig
from .forms import CreateRequest
from .scenarios import Outcome

MISSING = "<missing>"  # a script token: the response leaves `state` out


@dataclass
class Task:
    id: str
    key: str
    operation: Operation
    request: CreateRequest
    outcome: Outcome
    created: float
    processing_s: float  # scaled
    polls: int = 0
    query_errors_left: int = 0
    prepared: Future | None = None
    outputs: list[tuple[str, str]] | None = None  # (output name, result token), once rendered
    final_state: Any = None
    completed: float | None = None
    charged: bool = False
    last_progress: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def states(self) -> list[int]:
        return [0, 2, 3, 4, *([6] if self.operation.loop_processing else []), 5]


@dataclass(frozen=True)
class Step:
    """Where a task is at one look: its state and progress, and whether that state is its last."""

    state: Any
    progress: int
    terminal: bool


class Progression:
    def __init__(self, config: MockConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock

    def processing_limit(self) -> float:
        return self.config.scaled(self.config.max_processing_s)

    def seconds_left(self, task: Task) -> float:
        """Until the task reaches its last state (time progression)."""
        return max(0.0, min(task.processing_s, self.processing_limit()) - (self.clock() - task.created))

    def look(self, task: Task) -> Step:
        """The task's state and progress now (its lock held by the caller)."""
        step, steps, fraction = self._position(task)
        script = task.outcome.script
        if script is not None:
            index = _index(step, steps, len(script))
            state = script[-1] if fraction >= 1 else script[index]
            terminal = fraction >= 1 and (state == 1 or (isinstance(state, int) and state < 0))
        elif fraction >= 1:
            state, terminal = self._final_state(task), True
        else:
            state, terminal = task.states[_index(step, steps, len(task.states))], False
        return Step(state, _progress(task.outcome, state, fraction), terminal)

    def end(self, task: Task, state: Any) -> None:
        task.final_state = state
        # Completion is when processing ended, not when a poll happened to notice it.
        ended = task.created + min(task.processing_s, self.processing_limit())
        task.completed = min(self.clock(), ended) if task.outcome.polls is None else self.clock()

    def _position(self, task: Task) -> tuple[float, int, float]:
        """(step, steps, fraction done). By polls: the k-th poll is step k-1 of `polls`. By time: the fraction."""
        outcome = task.outcome
        if outcome.polls is not None:
            step = max(0, task.polls - 1)
            return step, outcome.polls, 1.0 if task.polls >= outcome.polls else step / outcome.polls
        limit = min(task.processing_s, self.processing_limit())
        fraction = 1.0 if limit <= 0 else min(1.0, (self.clock() - task.created) / limit)
        return fraction, 1, fraction

    def _final_state(self, task: Task) -> int:
        if task.outcome.state is not None:
            return task.outcome.state
        if task.outcome.polls is None and task.processing_s > self.processing_limit():
            return -8  # "The maximum processing time is 180 seconds."
        return 1


def _progress(outcome: Outcome, state: Any, fraction: float) -> int:
    """Whole percents: 100 only when done; by the outcome's points if it has any, else the fraction of the time
    to the curve's power, 0 while queued (state 0)."""
    if state == 1:
        return 100
    if outcome.progress_points is not None:
        return int(min(_along(outcome.progress_points, fraction), 99.0) + 1e-9)  # 37.99999… is 38 %
    if state == 0:
        return 0
    return int(min(fraction ** (outcome.progress_curve or 1.0), 0.99) * 100)


def _along(points: list[tuple[float, float]], fraction: float) -> float:
    """The percent at `fraction` on straight lines from (0, 0) through `points`, held after the last one."""
    before = (0.0, 0.0)
    for point in points:
        if fraction <= point[0]:
            (f0, p0), (f1, p1) = before, point
            return p0 + (p1 - p0) * (fraction - f0) / (f1 - f0)
        before = point
    return before[1]


def _index(step: float, steps: int, count: int) -> int:
    """Which of `count` equal phases step `step` of `steps` falls in (a boundary belongs to the later phase)."""
    return min(count - 1, int(step * count / steps + 1e-9))
