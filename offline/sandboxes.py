"""A Lambda sandbox: one process running one function version's handler, one invocation at a time, with the
function's timeout and memory enforced, and the messages that pass between it and the local Lambda service."""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sandbox_worker import Channel

WORKER = Path(__file__).with_name("sandbox_worker.py")
INIT_TIMEOUT_S = 10.0  # Lambda's limit for a function's init phase
PAGE = os.sysconf("SC_PAGE_SIZE")


class LambdaCrash(BaseException):
    """Raised by a fault hook: the function died (timeout, out of memory). Step Functions sees Lambda.Unknown.

    A BaseException, as the process dying is: no `except Exception` in the function can catch it and carry on.
    """


class LambdaThrottled(Exception):
    """Raised by a fault hook, or when a function's concurrency is used up: Lambda refused the invocation."""


class Died(Exception):
    """The sandbox ended an invocation by dying (killed for its timeout or memory, or a crash)."""


class ServiceError(Exception):
    """The local Lambda service could not run the function (its init failed): Lambda.ServiceException."""


@dataclass
class Invocation:
    """What one invocation did, as the local Lambda service saw it."""

    function_name: str
    event: Any
    result: Any
    error: str | None
    seconds: float
    cold_start_ms: float | None = None


def resident_bytes(pid: int | str = "self") -> int:
    """A process's resident memory (0 once it has gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass(frozen=True)
class FunctionSpec:
    """What a sandbox of one function version is started from."""

    name: str
    arn: str
    version: str
    handler: str
    # The code root first, then each layer's python folder, as Lambda orders them; then what `sam build` installs
    # for each layer, and last the runtime's SDK. Nothing else: a sandbox starts without `site`.
    paths: tuple[str, ...]
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int
    concurrency: int

    def __hash__(self) -> int:  # a changed function (code, environment, limits) gets sandboxes of its own
        return hash((self.name, self.paths, tuple(sorted(self.environment.items())), self.timeout_s, self.memory_mb))


# A fault hook: (point, event, params) → None, or it raises. See `LambdaRuntime.faults`.
FaultHook = Callable[[str, Any, dict | None], None]


@dataclass
class Sandbox:
    spec: FunctionSpec
    process: subprocess.Popen
    channel: Channel
    init_ms: float

    @classmethod
    def start(cls, spec: FunctionSpec, *, one_log_stream: bool, log_bytes: collections.Counter[str]) -> Sandbox:
        """A cold start: a new process imports the handler's module and runs its init."""
        parent, child = socket.socketpair()
        process = subprocess.Popen(
            # No `site`: it would put the whole virtualenv on the path, and run its .pth files (the checkout's
            # editable install is one of them). The sandbox gets the paths of its spec instead (`paths`).
            [sys.executable, "-S", str(WORKER), str(child.fileno())],  # -S: no user site either
            pass_fds=(child.fileno(),),
            env=spec.environment,
            cwd=spec.paths[0],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        child.close()
        for pipe, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            stream = "stdout" if one_log_stream else name
            threading.Thread(target=_forward, args=(pipe, stream, spec.name, log_bytes), daemon=True).start()
        channel = Channel(parent)
        channel.send({"paths": list(spec.paths), "handler": spec.handler, "function_name": spec.name})
        sandbox = cls(spec, process, channel, 0.0)
        try:
            ready = sandbox.next_message(time.monotonic() + INIT_TIMEOUT_S)
        except Died as died:
            sandbox.kill()
            raise ServiceError(f"{spec.name}: init failed: {died}") from None
        if "init_error" in ready:
            sandbox.kill()
            (sys.stdout if one_log_stream else sys.stderr).write(ready["trace"])
            raise ServiceError(f"{spec.name}: Runtime.ImportModuleError: {ready['init_error']}")
        sandbox.init_ms = ready["ready_ms"]
        return sandbox

    def run(self, event: Any, fault: FaultHook | None) -> dict:
        """One invocation: the handler's outcome (`result`, or `error`, `message` and `trace`) and the AWS calls
        it made (`aws_calls`). A fault hook is asked at each point the sandbox reports; what it raises is raised
        in the sandbox (a LambdaCrash here: the process dies with the invocation)."""
        spec = self.spec
        context = {
            "function_name": spec.name,
            "function_version": spec.version,
            "invoked_function_arn": spec.arn,
            "memory_limit_in_mb": spec.memory_mb,
            "timeout_s": spec.timeout_s,
            "aws_request_id": str(uuid.uuid4()),
            "log_group_name": f"/aws/lambda/{spec.name}",
            "log_stream_name": f"sandbox-{self.process.pid}",
        }
        deadline = time.monotonic() + spec.timeout_s
        self.channel.send({"event": event, "context": context, "faults": fault is not None})
        while True:
            message = self.next_message(deadline)
            if "fault" not in message or fault is None:
                return message
            try:
                fault(message["fault"], event, message["params"])
                answer: dict = {}
            except LambdaCrash:
                raise
            except Exception as exc:
                answer = {"raise": _picklable(exc)}
            self.channel.send(answer)

    def next_message(self, deadline: float) -> dict:
        limit = self.spec.memory_mb * 1024 * 1024
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Died(f"Task timed out after {self.spec.timeout_s:.2f} seconds")
            readable, _, _ = select.select([self.channel.sock], [], [], min(left, 0.05))
            if readable:
                try:
                    return self.channel.recv()
                except (EOFError, OSError):
                    raise Died(f"Runtime exited with error: exit status {self.process.poll()}") from None
            if self.rss_bytes() > limit:
                raise Died(f"Runtime exited with error: signal: killed (over {self.spec.memory_mb} MB)")

    def rss_bytes(self) -> int:
        return resident_bytes(self.process.pid)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(5)
        self.channel.sock.close()


def _forward(pipe: Any, name: str, function: str, counted: collections.Counter[str]) -> None:
    """A sandbox's log lines go to this process's stdout/stderr as they are at the time of writing (the local
    stack points them at .local/lambda.log, as Lambda sends them to CloudWatch; pytest captures them), and are
    counted, as CloudWatch bills what it ingests."""
    for line in iter(pipe.readline, b""):
        counted[function] += len(line)
        stream = getattr(sys, name)
        with contextlib.suppress(ValueError, OSError):
            stream.write(line.decode("utf-8", "replace"))
            stream.flush()
    pipe.close()


def _picklable(exc: BaseException) -> bytes:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
