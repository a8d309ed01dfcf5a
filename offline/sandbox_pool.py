"""Each function's sandboxes: a warm one reused, else a new one (a cold start, timed) within the function's
concurrency; past it a synchronous invocation is throttled and an asynchronous one waits, as in Lambda."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .sandboxes import FunctionSpec, LambdaThrottled, Sandbox


@dataclass
class _Sandboxes:
    idle: list[Sandbox] = field(default_factory=list)
    running: int = 0  # sandboxes alive, idle or busy


class SandboxPool:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._freed = threading.Condition(self._lock)  # a sandbox came free (or its place did)
        self._by_spec: dict[FunctionSpec, _Sandboxes] = {}
        self._busy: dict[int, Sandbox] = {}
        self.cold_starts: list[tuple[str, float]] = []  # (function name, init ms)
        self.log_bytes: collections.Counter[str] = collections.Counter()  # function name → bytes it logged
        self.one_log_stream = False  # Lambda sends a function's stdout and stderr to one log
        self.closed = False

    def acquire(self, spec: FunctionSpec, *, queue: bool = False) -> tuple[Sandbox, bool]:
        """A sandbox for one invocation, and whether it was a cold start."""
        with self._freed:
            sandboxes = self._by_spec.setdefault(spec, _Sandboxes())
            while not sandboxes.idle and sandboxes.running >= spec.concurrency:
                if not queue or self.closed:
                    raise LambdaThrottled(f"Rate Exceeded: {spec.name} is at its concurrency of {spec.concurrency}")
                self._freed.wait(0.5)
            if sandboxes.idle:
                return sandboxes.idle.pop(), False
            sandboxes.running += 1
        try:
            sandbox = Sandbox.start(spec, one_log_stream=self.one_log_stream, log_bytes=self.log_bytes)
        except BaseException:
            with self._freed:
                sandboxes.running -= 1
                self._freed.notify_all()
            raise
        with self._lock:
            self.cold_starts.append((spec.name, sandbox.init_ms))
        return sandbox, True

    @contextlib.contextmanager
    def busy(self, sandbox: Sandbox) -> Iterator[Sandbox]:
        """While an invocation runs in it (its memory counts in `all_sandboxes`)."""
        with self._lock:
            self._busy[id(sandbox)] = sandbox
        try:
            yield sandbox
        finally:
            with self._lock:
                self._busy.pop(id(sandbox), None)

    def release(self, sandbox: Sandbox) -> None:
        with self._freed:
            self._by_spec[sandbox.spec].idle.append(sandbox)
            self._freed.notify_all()

    def discard(self, sandbox: Sandbox) -> None:
        """A sandbox that died, crashed or broke its channel: never handed out again."""
        sandbox.kill()
        with self._freed:
            self._by_spec[sandbox.spec].running -= 1
            self._freed.notify_all()

    def all_sandboxes(self) -> list[Sandbox]:
        with self._lock:
            return [s for group in self._by_spec.values() for s in group.idle] + list(self._busy.values())

    def close(self) -> None:
        """Every idle sandbox ends; busy ones end when their invocation does."""
        self.closed = True
        with self._lock:
            sandboxes = [s for group in self._by_spec.values() for s in group.idle]
            for group in self._by_spec.values():
                group.idle.clear()
        for sandbox in sandboxes:
            sandbox.kill()
