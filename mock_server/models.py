"""The mock's model layer: tasks and their state transitions, results with expiry, the QPS limiter, rules,
the request journal and credits. Routes only parse and serialize; everything with state lives here."""

from __future__ import annotations

import base64
import io
import random
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from PIL import Image, UnidentifiedImageError

from picwish.catalog import MAX_SIDE, Operation
from picwish.images import sniff_format

from . import imaging
from .config import MockConfig
from .exceptions import NotFound
from .forms import CreateRequest, Upload
from .scenarios import Outcome, Rule

MISSING = "<missing>"  # a script token: the response leaves `state` out
CHAOS_KINDS = frozenset({"500", "429", "429-body", "truncate", "slow"})  # faults /__mock__/chaos can inject


@dataclass
class Prepared:
    """The task's results, rendered in the background from its inputs once fetched and decoded (as the API
    works while the task is processing), or the failure state that fetching or decoding ended in."""

    files: list[imaging.OutputFile] = field(default_factory=list)
    failure: int | None = None


@dataclass
class StoredResult:
    data: bytes
    content_type: str
    filename: str
    expires_at: float


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
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.chaos: dict[str, float] = dict(self.config.chaos)
            self.chaos_rng = random.Random(self.config.chaos_seed)
            self.tasks: dict[str, Task] = {}
            self.results: dict[str, StoredResult] = {}
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
            query_errors_left=outcome.query_status_count if outcome.query_status else 0,
        )
        task.prepared = self.executor.submit(self._prepare, op, request)
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

    def take_query_error(self, task: Task) -> int | None:
        """The status a rule forces on this poll, if any are left (counted under the task's lock)."""
        with task.lock:
            if task.query_errors_left <= 0:
                return None
            task.query_errors_left -= 1
            return task.outcome.query_status

    def processing_limit(self) -> float:
        return self.config.scaled(self.config.max_processing_s)

    def seconds_left(self, task: Task) -> float:
        """Until the task reaches its last state (time progression)."""
        return max(0.0, min(task.processing_s, self.processing_limit()) - (self.clock() - task.created))

    def observe(self, task: Task, *, poll: bool) -> tuple[Any, int]:
        """The task's (state, progress) now; a poll advances poll-driven progressions."""
        with task.lock:
            if poll:
                task.polls += 1
            if task.final_state is not None:
                return task.final_state, 100 if task.final_state == 1 else task.last_progress
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
            curve = task.outcome.progress_curve or 1.0
            progress = 100 if state == 1 else int(min(fraction**curve, 0.99) * 100) if state != 0 else 0
            if state == 1:
                failure = self._inputs_failure(task)
                if failure is not None:
                    state, terminal = failure, True
                else:
                    self._render(task)
            task.last_progress = progress
            if terminal:
                task.final_state = state
                # Completion is when processing ended, not when a poll happened to notice it.
                ended = task.created + min(task.processing_s, self.processing_limit())
                task.completed = min(self.clock(), ended) if task.outcome.polls is None else self.clock()
                if state == 1 and not task.charged:
                    task.charged = True
                    with self.lock:
                        self.credits[task.key] += task.operation.credits or 1
            return state, progress

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

    def _inputs_failure(self, task: Task) -> int | None:
        prepared: Prepared = task.prepared.result()  # downloads time out after 10 s, so this is bounded
        return prepared.failure

    def _render(self, task: Task) -> None:
        if task.outputs is not None:
            return
        files = task.prepared.result().files
        ttl = task.outcome.result_ttl if task.outcome.result_ttl is not None else self.config.result_ttl_s
        expires = self.clock() + ttl
        outputs = []
        with self.lock:
            for f in files:
                token = secrets.token_urlsafe(18)
                self.results[token] = StoredResult(f.data, f.content_type, f.filename, expires)
                outputs.append((f.name, token))
        task.outputs = outputs

    def result(self, token: str) -> StoredResult | None:
        """The stored result, or None when unknown or expired (the caller answers like object storage)."""
        with self.lock:
            stored = self.results.get(token)
        if stored is None or self.clock() > stored.expires_at:
            return None
        return stored

    def result_bytes(self, token: str) -> bytes:
        with self.lock:
            return self.results[token].data

    # -- inputs ---------------------------------------------------------------------------------------------

    def _prepare(self, op: Operation, request: CreateRequest) -> Prepared:
        """Fetch URL inputs and decode every input, turning problems into the documented failure states."""
        raw: dict[str, bytes] = {}
        for slot, source in request.sources.items():
            if isinstance(source, Upload):
                raw[slot] = source.data
                continue
            fetched = self._download(source, op.max_bytes)
            if isinstance(fetched, int):
                return Prepared(failure=fetched)
            raw[slot] = fetched
        images: dict[str, Image.Image] = {}
        sizes: dict[str, tuple[int, int]] = {}
        for slot, data in raw.items():
            if sniff_format(data) not in op.formats:
                return Prepared(failure=-7)
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    sizes[slot] = opened.size
                    if max(opened.size) > MAX_SIDE:
                        return Prepared(failure=-14)
                    if self.config.render_max_side:  # a JPEG decodes straight to a smaller scale
                        opened.draft(opened.mode, (self.config.render_max_side, self.config.render_max_side))
                    opened.load()
                    images[slot] = opened.copy()
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                return Prepared(failure=-7)
        if any(size != sizes["image"] for size in sizes.values()):
            return Prepared(failure=-14)  # image and masks must have the same dimensions
        if op.max_mask_area is not None and "mask" in images:
            histogram = images["mask"].convert("L").histogram()
            w, h = images["mask"].size
            if sum(histogram[128:]) / (w * h) > op.max_mask_area:
                return Prepared(failure=-14)
        scaled = imaging.scaled(images, self.config.render_max_side)
        return Prepared(files=imaging.render(op.name, scaled, request.options))

    def _download(self, url: str, max_bytes: int) -> bytes | int:
        """The bytes at `url`, or -5 when over the size limit, -3 when it cannot be fetched."""
        try:
            with requests.get(url, stream=True, timeout=self.config.download_timeout_s) as response:
                if response.status_code != 200:
                    return -3
                chunks, size = [], 0
                deadline = time.monotonic() + self.config.download_timeout_s
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        return -5
                    if time.monotonic() > deadline:
                        return -3
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.RequestException:
            return -3

    # -- serialization helpers ------------------------------------------------------------------------------

    def task_data(self, task: Task, state: Any, progress: int, base_url: str) -> dict[str, Any]:
        """The documented `data` object for a task in `state`."""
        op = task.operation
        data: dict[str, Any] = {"task_id": task.id, "created_at": str(int(task.created)), "progress": progress}
        if state != MISSING:
            data["state"] = state
        if state != 0:
            data["processed_at"] = str(int(task.created))
        if task.completed is not None:
            data["completed_at"] = str(int(task.completed))
        return_type = task.request.options.get("return_type", 1)
        defect = task.outcome.result
        if state == 1 and task.outputs and defect != "missing":
            for name, token in task.outputs:
                stored = self.results[token]
                if defect == "empty":
                    value = ""
                elif return_type == 2:
                    value = base64.b64encode(self.result_bytes(token)).decode()
                else:
                    value = f"{base_url.rstrip('/')}/results/{token}/{stored.filename}"
                if name == "image":
                    data["image"] = value
                elif name == "clothes_masks":
                    data["clothes_masks"] = value
                else:
                    data.setdefault("class_masks", {})[name] = value
        if op.name == "retouching-collection":
            data["return_type"] = return_type
            data["type"] = task.request.options.get("type", 1)
            finished = task.completed if task.completed is not None else self.clock()
            data["time_elapsed"] = f"{finished - task.created:.2f}"
            data["state_detail"] = _state_detail(state)
        if op.name == "clothing-segmentation":
            data["output_type"] = task.request.options.get("output_type", 1)
            data.setdefault("class_masks", {})
            data.setdefault("clothes_masks", "")
        return data

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tasks_created": dict(self.tasks_created),
                "credits": dict(self.credits),
                "journal_entries": len(self.journal),
            }


def _index(step: float, steps: int, count: int) -> int:
    """Which of `count` equal phases step `step` of `steps` falls in (a boundary belongs to the later phase)."""
    return min(count - 1, int(step * count / steps + 1e-9))


def _state_detail(state: Any) -> str:
    if state == 1:
        return "success"
    if isinstance(state, int) and state < 0:
        return "failed"
    return "processing"
