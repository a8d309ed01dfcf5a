"""The local Lambda service: when moto invokes a function (S3 notification, state machine task, API call), the
function's real handler runs in a sandbox process of its own, from the code package and layers moto holds, with
its environment from the template, its own credentials, and its timeout and memory enforced.

A sandbox runs one invocation at a time and is reused while warm; when all of a function's sandboxes are busy a
new one is started (a cold start: the real import and init, timed), up to the function's reserved concurrency
(else `default_concurrency`); past that the invocation is throttled, as Lambda throttles it.

Why not moto's own Lambda: it runs code in Docker, and no Docker engine is available here.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import io
import itertools
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda import models as lambda_models
from moto.s3 import notifications as s3_notifications

from .runtime_packages import LinkedPackages, PackagesError
from .sandbox_worker import Channel

WORKER = Path(__file__).with_name("sandbox_worker.py")
INIT_TIMEOUT_S = 10.0  # Lambda's limit for a function's init phase
PASS_THROUGH = ("AWS_ENDPOINT_URL", "POWERTOOLS_TRACE_DISABLED", "PATH", "LANG", "SYSTEMROOT")
PAGE = os.sysconf("SC_PAGE_SIZE")


class LambdaCrash(BaseException):
    """Raised by a fault hook: the function died (timeout, out of memory). Step Functions sees Lambda.Unknown.

    A BaseException, as the process dying is: no `except Exception` in the function can catch it and carry on.
    """


class LambdaThrottled(Exception):
    """Raised by a fault hook, or when a function's concurrency is used up: Lambda refused the invocation."""


ERROR_TYPES = {LambdaCrash: "Lambda.Unknown", LambdaThrottled: "Lambda.TooManyRequestsException"}


@dataclass
class Invocation:
    function_name: str
    event: Any
    result: Any
    error: str | None
    seconds: float
    cold_start_ms: float | None = None


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


@dataclass
class Sandbox:
    spec: FunctionSpec
    process: subprocess.Popen
    channel: Channel
    init_ms: float

    def rss_bytes(self) -> int:
        try:
            return int(Path(f"/proc/{self.process.pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(5)
        self.channel.sock.close()


@dataclass
class _Pool:
    idle: list[Sandbox] = field(default_factory=list)
    running: int = 0  # sandboxes alive, idle or busy


class _Died(Exception):
    """The sandbox ended an invocation by dying (killed for its timeout or memory, or a crash)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class LambdaRuntime:
    def __init__(self, workdir: Path | None = None, *, default_concurrency: int = 4) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="picwish-lambda-") if workdir is None else None
        self.workdir = Path(self._tmp.name if self._tmp else workdir)
        self.default_concurrency = default_concurrency
        self._lock = threading.RLock()
        self._freed = threading.Condition(self._lock)  # a sandbox came free (or its slot did)
        self._pools: dict[FunctionSpec, _Pool] = {}
        self._busy: dict[int, Sandbox] = {}
        self._extracted: set[str] = set()
        self.packages = LinkedPackages(self.workdir)
        self.invocations: list[Invocation] = []
        self.cold_starts: list[tuple[str, float]] = []  # (function name, init ms)
        self.aws_calls: collections.Counter[str] = collections.Counter()  # "<service>.<Operation>" the code made
        self.log_bytes: collections.Counter[str] = collections.Counter()  # function name → bytes it logged
        # function name → hook(point, event, params) that may raise. Points: "before" and "after" the handler,
        # "before <Service>.<Operation>" / "after <Service>.<Operation>" around each AWS call it makes (params:
        # the call's parameters), so a crash can land between any two steps of a function.
        self.faults: dict[str, Callable[[str, Any, dict | None], None]] = {}
        # function name → {"AWS_ACCESS_KEY_ID": …, "AWS_SECRET_ACCESS_KEY": …}: its execution role's credentials
        self.credentials: dict[str, dict[str, str]] = {}
        self.s3_delivery_delay_s = 0.1
        # Lambda sends a function's stdout and stderr to one log; the local stack's console keeps only its own lines.
        self.one_log_stream = False
        self.s3_delivery_copies = 1  # 2 delivers every S3 event twice (S3 is at-least-once)
        self.async_failures: list[Invocation] = []
        self._original = None
        self._original_s3 = None
        self._pending: list[threading.Thread] = []
        self._sequencer = itertools.count(int(time.time() * 1000) << 16)
        self._inherited: dict[str, str] = {}
        self._inherited_credentials: dict[str, str] = {}
        self.closed = False

    # -- moto hook ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[LambdaRuntime]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def install(self) -> None:
        runtime = self
        # The environment sandboxes inherit is the one the service started in (endpoint, region), not whatever
        # this process's environment is when a late retry comes in.
        self._inherited = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        self._inherited_credentials = {
            k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ
        }
        self.closed = False
        self._original = lambda_models.LambdaFunction._invoke_lambda

        def invoke(fn, event=None):  # replaces moto's Docker-based LambdaFunction._invoke_lambda
            return runtime.invoke(fn, event)

        lambda_models.LambdaFunction._invoke_lambda = invoke
        self._original_s3 = s3_notifications._invoke_awslambda
        s3_notifications._invoke_awslambda = self._deliver_s3_event

    def uninstall(self) -> None:
        if self._original is not None:
            lambda_models.LambdaFunction._invoke_lambda = self._original
            s3_notifications._invoke_awslambda = self._original_s3
            self._original = None
        self.close()

    def close(self) -> None:
        """Every sandbox ends (the local Lambda service shuts down); queued retries are dropped."""
        self.closed = True
        with self._lock:
            sandboxes = [s for pool in self._pools.values() for s in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
        for sandbox in sandboxes:
            sandbox.kill()

    def _error_log(self) -> Any:
        return sys.stdout if self.one_log_stream else sys.stderr

    # -- S3 → Lambda: asynchronous, as in AWS -----------------------------------------------------------------

    def _deliver_s3_event(self, account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        """moto invokes the function inside PutObject, before it stores the object's metadata; S3 really
        delivers after the write, asynchronously. Deliveries go to a thread, with Lambda's async retries."""
        from moto.awslambda.utils import get_backend

        fn = get_backend(account_id, region_name).get_function(fn_arn)
        # moto's records carry no sequencer; S3's always do, and job identity relies on it when versioning is off.
        for record in event_body.get("Records", []):
            record["s3"]["object"].setdefault("sequencer", f"{next(self._sequencer):016X}")
        for _ in range(self.s3_delivery_copies):
            thread = threading.Thread(target=self._invoke_async, args=(fn, event_body), daemon=True)
            with self._lock:
                self._pending.append(thread)
            thread.start()

    def _invoke_async(self, fn: Any, event: Any, retries: int = 2) -> None:
        time.sleep(self.s3_delivery_delay_s)
        attempt = 0
        while not self.closed:
            payload, errored, _logs = self.invoke(fn, copy.deepcopy(event), queue=True)
            if not errored:
                return
            last = Invocation(fn.function_name, event, payload, json.loads(payload).get("errorType"), 0.0)
            if last.error == ERROR_TYPES[LambdaThrottled]:
                time.sleep(0.2)  # a throttle a fault hook injected: the queue keeps the event; not an attempt
                continue
            if attempt >= retries:
                break
            attempt += 1
            time.sleep(min(2**attempt, 4) * 0.1)  # Lambda waits 1 and 2 minutes; scaled down offline
        if self.closed:
            return
        with self._lock:
            self.async_failures.append(last)

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until every queued S3 delivery has run."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._pending):
            thread.join(max(0.0, deadline - time.monotonic()))

    def preload(self, function_names: Iterable[str], account_id: str, region: str) -> None:
        """One warm sandbox per function before any traffic (what provisioned concurrency buys)."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(account_id, region)
        for name in function_names:
            spec = self._spec(backend.get_function(name))
            sandbox, _cold = self._acquire(spec)
            self._release(sandbox)

    # -- figures --------------------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Resident memory of this process and every sandbox alive: the local stack's footprint."""
        with self._lock:
            sandboxes = [s for pool in self._pools.values() for s in pool.idle] + list(self._busy.values())
        own = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
        return own + sum(s.rss_bytes() for s in sandboxes)

    # -- invocation -----------------------------------------------------------------------------------------

    def invoke(self, fn: Any, event: Any, *, queue: bool = False) -> tuple[str, bool, str]:
        if isinstance(event, str):
            event = json.loads(event or "{}")
        name = fn.function_name
        if self.closed:
            stopped = {"errorMessage": "the local Lambda service has stopped", "errorType": "Lambda.ServiceException"}
            return json.dumps(stopped), True, ""
        started = time.monotonic()
        fault = self.faults.get(name)
        cold_ms = None
        try:
            spec = self._spec(fn)
            if fault is not None:
                fault("before", event, None)
            sandbox, cold = self._acquire(spec, queue=queue)
            cold_ms = sandbox.init_ms if cold else None
            try:
                outcome = self._run(sandbox, event, fault)
                if fault is not None:
                    fault("after", event, None)  # a crash here: the answer was lost with the process
            except BaseException:  # died, crashed, or its channel broke: never handed out again
                self._discard(sandbox)
                raise
            self._release(sandbox)
            if "error" in outcome:
                error, message, trace = outcome["error"], outcome["message"], outcome["trace"]
                payload = json.dumps({"errorMessage": message, "errorType": error, "stackTrace": trace})
            else:
                payload, error = outcome["result"], None
        except _Died as died:
            error = "Lambda.Unknown"
            payload = json.dumps({"errorMessage": str(died), "errorType": error})
            self._error_log().write(f"[ERROR] {name} {died}\n")
        except (Exception, LambdaCrash) as exc:  # a fault hook's or the service's own: Lambda's error payload
            error = ERROR_TYPES.get(type(exc), type(exc).__name__)
            if isinstance(exc, _ServiceError):
                error = "Lambda.ServiceException"
            payload = json.dumps({"errorMessage": str(exc), "errorType": error})
            if not isinstance(exc, LambdaThrottled):  # Lambda logs what the function raised; a throttle never ran
                self._error_log().write(f"[ERROR] {name} {error}: {exc}\n")
        with self._lock:
            self.invocations.append(Invocation(name, event, payload, error, time.monotonic() - started, cold_ms))
        return payload, error is not None, ""

    def _run(self, sandbox: Sandbox, event: Any, fault: Callable | None) -> dict:
        spec = sandbox.spec
        context = {
            "function_name": spec.name,
            "function_version": spec.version,
            "invoked_function_arn": spec.arn,
            "memory_limit_in_mb": spec.memory_mb,
            "timeout_s": spec.timeout_s,
            "aws_request_id": str(uuid.uuid4()),
            "log_group_name": f"/aws/lambda/{spec.name}",
            "log_stream_name": f"sandbox-{sandbox.process.pid}",
        }
        deadline = time.monotonic() + spec.timeout_s
        with self._lock:
            self._busy[id(sandbox)] = sandbox
        try:
            sandbox.channel.send({"event": event, "context": context, "faults": fault is not None})
            while True:
                message = self._next_message(sandbox, deadline)
                if "fault" not in message:
                    with self._lock:
                        self.aws_calls.update(message.get("aws_calls", {}))
                    return message
                try:
                    fault(message["fault"], event, message["params"])
                    answer: dict = {}
                except LambdaCrash:
                    raise
                except Exception as exc:
                    answer = {"raise": _picklable(exc)}
                sandbox.channel.send(answer)
        finally:
            with self._lock:
                self._busy.pop(id(sandbox), None)

    def _next_message(self, sandbox: Sandbox, deadline: float) -> dict:
        limit = sandbox.spec.memory_mb * 1024 * 1024
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Died(f"Task timed out after {sandbox.spec.timeout_s:.2f} seconds")
            readable, _, _ = select.select([sandbox.channel.sock], [], [], min(left, 0.05))
            if readable:
                try:
                    return sandbox.channel.recv()
                except (EOFError, OSError):
                    raise _Died(f"Runtime exited with error: exit status {sandbox.process.poll()}") from None
            if sandbox.rss_bytes() > limit:
                raise _Died(f"Runtime exited with error: signal: killed (over {sandbox.spec.memory_mb} MB)")

    # -- sandboxes ------------------------------------------------------------------------------------------

    def _acquire(self, spec: FunctionSpec, *, queue: bool = False) -> tuple[Sandbox, bool]:
        """A warm sandbox, else a new one within the concurrency; past it a synchronous invocation is
        throttled, and an asynchronous one waits in Lambda's event queue for a sandbox to come free."""
        with self._freed:
            pool = self._pools.setdefault(spec, _Pool())
            while not pool.idle and pool.running >= spec.concurrency:
                if not queue or self.closed:
                    raise LambdaThrottled(f"Rate Exceeded: {spec.name} is at its concurrency of {spec.concurrency}")
                self._freed.wait(0.5)
            if pool.idle:
                return pool.idle.pop(), False
            pool.running += 1
        try:
            return self._start(spec), True
        except BaseException:
            with self._freed:
                pool.running -= 1
                self._freed.notify_all()
            raise

    def _release(self, sandbox: Sandbox) -> None:
        with self._freed:
            self._pools[sandbox.spec].idle.append(sandbox)
            self._freed.notify_all()

    def _discard(self, sandbox: Sandbox) -> None:
        sandbox.kill()
        with self._freed:
            self._pools[sandbox.spec].running -= 1
            self._freed.notify_all()

    def _start(self, spec: FunctionSpec) -> Sandbox:
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
            stream = "stdout" if self.one_log_stream else name
            threading.Thread(target=_forward, args=(pipe, stream, spec.name, self.log_bytes), daemon=True).start()
        channel = Channel(parent)
        channel.send({"paths": list(spec.paths), "handler": spec.handler, "function_name": spec.name})
        sandbox = Sandbox(spec, process, channel, 0.0)
        try:
            ready = self._next_message(sandbox, time.monotonic() + INIT_TIMEOUT_S)
        except _Died as died:
            sandbox.kill()
            raise _ServiceError(f"{spec.name}: init failed: {died}") from None
        if "init_error" in ready:
            sandbox.kill()
            self._error_log().write(ready["trace"])
            raise _ServiceError(f"{spec.name}: Runtime.ImportModuleError: {ready['init_error']}")
        sandbox.init_ms = ready["ready_ms"]
        with self._lock:
            self.cold_starts.append((spec.name, sandbox.init_ms))
        return sandbox

    def _spec(self, fn: Any) -> FunctionSpec:
        from moto.awslambda.utils import get_backend

        code_root = self._extract(fn.code_bytes or b"")
        backend = get_backend(fn.account_id, fn.region)
        layer_paths, installed = [], []
        for layer in fn.layers or []:
            root = Path(self._extract(backend.layers_versions_by_arn(layer["Arn"]).code_bytes))
            layer_paths.append(str(root / "python" if (root / "python").is_dir() else root))
            try:
                packages = self.packages.for_layer(root)
            except PackagesError as exc:
                raise _ServiceError(f"{fn.function_name}: layer {layer['Arn']}: {exc}") from None
            if packages is not None:
                installed.append(packages)  # what `sam build` installs next to the layer's code
        environment = dict(self._inherited)
        credentials = self.credentials.get(fn.function_name) or self._inherited_credentials
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "LAMBDA_TASK_ROOT": code_root,
                "TZ": ":UTC",
                "PYTHONDONTWRITEBYTECODE": "1",
                **credentials,
                **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
            }
        )
        return FunctionSpec(
            name=fn.function_name,
            arn=fn.function_arn,
            version=str(fn.version),
            handler=fn.handler,
            paths=(code_root, *layer_paths, *installed, self.packages.runtime_sdk()),
            environment=environment,
            timeout_s=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            concurrency=int(fn.reserved_concurrency or self.default_concurrency),
        )

    def _extract(self, code: bytes) -> str:
        digest = hashlib.sha256(code).hexdigest()[:16]
        root = self.workdir / digest
        with self._lock:
            if digest not in self._extracted:
                if not root.exists():
                    staging = self.workdir / f"{digest}.partial"
                    with zipfile.ZipFile(io.BytesIO(code)) as archive:
                        archive.extractall(staging)
                    staging.rename(root)
                self._extracted.add(digest)
        return str(root)


class _ServiceError(Exception):
    """The local Lambda service could not run the function (its init failed): Lambda.ServiceException."""


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
