"""The mock's model layer: the tasks of each key, the QPS limiter, chaos, scenario rules, the request journal
and credits; a task's progression, its inputs and its results are parts of their own (`progression`, `inputs`,
`result_store`). Routes only parse and serialize; everything with state lives here."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .config import MockConfig
from .exceptions import NotFound
from .forms import CreateRequest
from .inputs import InputFetcher, Prepared
from .progression import Progression, Task
from .result_store import ResultStore
from .scenarios import Outcome, Rule

CHAOS_KINDS = frozenset({"500", "429", "429-body", "truncate", "slow"})  # faults /__mock__/chaos can inject


class RateLimiter:
    """Rolling one-second window per key. Rejected calls are not counted: they did no work."""

    def __init__(self, qps: float, clock: Callable[[], float]):
        self.qps = qps
        self.clock = clock
        self.calls: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        """None when the call may go ahead; otherwise the seconds until a slot frees."""
        if self.qps <= 0:
            return None
        now = self.clock()
        with self.lock:
            window = self.calls[key]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.qps:
                return max(0.0, window[0] + 1.0 - now)
            window.append(now)
            return None


class MockBackend:
    def __init__(self, config: MockConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mock-prepare")
        # The parts read the backend's clock, so a test that sets `backend.clock` moves them all.
        self.progression = Progression(config, lambda: self.clock())
        self.inputs = InputFetcher(config)
        self.results = ResultStore(lambda: self.clock())
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.chaos: dict[str, float] = dict(self.config.chaos)
            self.chaos_rng = random.Random(self.config.chaos_seed)
            self.tasks: dict[str, Task] = {}
            self.results.reset()
            self.rules: list[Rule] = []
            self.journal: deque[dict[str, Any]] = deque(maxlen=100_000)
            self.credits: dict[str, int] = defaultdict(int)
            self.tasks_created: dict[str, int] = defaultdict(int)
            self.limiter = RateLimiter(self.config.qps, self.clock)

    def set_chaos(self, rates: dict[str, float], seed: int | None = None) -> None:
        unknown = set(rates) - CHAOS_KINDS
        if unknown or not all(0 <= float(v) <= 1 for v in rates.values()):
            raise ValueError(f"chaos: rates in [0, 1] for {', '.join(sorted(CHAOS_KINDS))}; got {rates}")
        with self.lock:
            self.chaos = {k: float(v) for k, v in rates.items()}
            if seed is not None:
                self.chaos_rng = random.Random(seed)

    def draw_chaos(self) -> str | None:
        """The fault this call suffers, if any (one draw per call, so rates add up)."""
        with self.lock:
            if not self.chaos:
                return None
            roll, edge = self.chaos_rng.random(), 0.0
            for kind, rate in sorted(self.chaos.items()):
                edge += rate
                if roll < edge:
                    return kind
        return None

    def task_times(self) -> dict[str, dict[str, Any]]:
        """Exact creation and completion times (the API's fields are whole seconds), for benchmarks."""
        with self.lock:
            tasks = list(self.tasks.values())
        return {
            t.id: {
                "operation": t.operation.name,
                "created": t.created,
                "completed": t.completed,
                "state": t.final_state,
            }
            for t in tasks
        }

    # -- scenario rules -------------------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def match_rule(self, operation: str, filename: str) -> Rule | None:
        """The first rule that matches, counted as applied."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(operation, filename):
                    rule.applied += 1
                    return rule
        return None

    # -- journal --------------------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.journal.append({"time": self.clock(), **entry})

    # -- tasks ----------------------------------------------------------------------------------------------

    def create_task(self, key: str, request: CreateRequest, outcome: Outcome) -> Task:
        op = request.operation
        processing = outcome.processing if outcome.processing is not None else self.config.processing_s[op.name]
        task = Task(
            id=secrets.token_hex(16),
            key=key,
            operation=op,
            request=request,
            outcome=outcome,
            created=self.clock(),
            processing_s=self.config.scaled(processing),
            query_errors_left=outcome.query_status_count if outcome.query_status or outcome.query_fault else 0,
        )
        task.prepared = self.executor.submit(self.inputs.prepare, op, request)
        with self.lock:
            self.tasks[task.id] = task
            self.tasks_created[key] += 1
        return task

    def get_task(self, key: str, task_id: str) -> Task:
        with self.lock:
            task = self.tasks.get(task_id)
        if task is None or task.key != key:  # another key's task is as unknown as a missing one
            raise NotFound(f"task {task_id} not found")
        return task

    def take_query_error(self, task: Task) -> int | str | None:
        """The status (or fault: "reset", "not-json") a rule forces on this poll, if any are left (counted under
        the task's lock)."""
        with task.lock:
            if task.query_errors_left <= 0:
                return None
            task.query_errors_left -= 1
            return task.outcome.query_fault or task.outcome.query_status

    def seconds_left(self, task: Task) -> float:
        return self.progression.seconds_left(task)

    def observe(self, task: Task, *, poll: bool) -> tuple[Any, int]:
        """The task's (state, progress) now; a poll advances poll-driven progressions. Reaching state 1 is
        where the inputs' fate shows (a failure state instead) and the results become links; a task that ends
        done is charged once."""
        with task.lock:
            if poll:
                task.polls += 1
            if task.final_state is not None:
                return task.final_state, 100 if task.final_state == 1 else task.last_progress
            step = self.progression.look(task)
            state, terminal = step.state, step.terminal
            if state == 1:
                # Submitted with the task; downloads time out after 10 s, so this wait is bounded.
                prepared: Prepared = task.prepared.result() if task.prepared else Prepared(failure=-7)
                if prepared.failure is not None:
                    state, terminal = prepared.failure, True
                elif task.outputs is None:
                    ttl = task.outcome.result_ttl if task.outcome.result_ttl is not None else self.config.result_ttl_s
                    task.outputs = self.results.put(prepared.files, ttl)
            task.last_progress = step.progress
            if terminal:
                self.progression.end(task, state)
                if state == 1 and not task.charged:
                    task.charged = True
                    with self.lock:
                        self.credits[task.key] += task.operation.credits or 1
            return state, step.progress

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tasks_created": dict(self.tasks_created),
                "credits": dict(self.credits),
                "journal_entries": len(self.journal),
            }
