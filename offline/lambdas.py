"""The one in-process Lambda runtime: when moto invokes a function (S3 notification, state machine task, rule
target, API call), the function's real handler runs in this process, from the code package moto holds, with its
environment from the template and a proper Lambda context.

Why: moto's own Lambda runs code in Docker, and no Docker engine is available here.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.awslambda import models as lambda_models
from moto.s3 import notifications as s3_notifications

_ENV_LOCK = threading.Lock()  # imports read the environment: one cold start at a time


class LambdaCrash(BaseException):
    """Raised by a fault hook: the function died (timeout, out of memory). Step Functions sees Lambda.Unknown.

    A BaseException, as the process dying is: no `except Exception` in the function can catch it and carry on.
    """


class LambdaThrottled(Exception):
    """Raised by a fault hook: Lambda refused the invocation (concurrency exhausted)."""


ERROR_TYPES = {LambdaCrash: "Lambda.Unknown", LambdaThrottled: "Lambda.TooManyRequestsException"}


@dataclass
class LambdaContext:
    """What Lambda hands a handler (the attributes Powertools reads)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass
class Invocation:
    function_name: str
    event: Any
    result: Any
    error: str | None
    seconds: float


class InProcessLambdaRuntime:
    def __init__(self, workdir: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="picwish-lambda-") if workdir is None else None
        self.workdir = Path(self._tmp.name if self._tmp else workdir)
        self._handlers: dict[tuple[str, str], Callable] = {}
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []
        # function name → hook(point, event, params) that may raise. Points: "before" and "after" the handler,
        # "before <Service>.<Operation>" / "after <Service>.<Operation>" around each AWS call it makes (params:
        # the call's parameters), so a crash can land between any two steps of a function.
        self.faults: dict[str, Callable[[str, Any, dict | None], None]] = {}
        self._current = threading.local()  # the invocation this thread runs: AWS-call points find their hook
        self.s3_delivery_delay_s = 0.1
        self.s3_delivery_copies = 1  # 2 delivers every S3 event twice (S3 is at-least-once)
        self.async_failures: list[Invocation] = []
        self._original = None
        self._original_s3 = None
        self._pending: list[threading.Timer] = []
        self._sequencer = itertools.count(int(time.time() * 1000) << 16)

    # -- moto hook ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self) -> Iterator[InProcessLambdaRuntime]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def install(self) -> None:
        runtime = self
        # Every function's clients come from the default session, created at cold start (after this).
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        self._events = events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build", self._before_aws_call, unique_id="picwish-fault-before")
        events.register("after-call", self._after_aws_call, unique_id="picwish-fault-after")
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
            self._events.unregister("before-parameter-build", unique_id="picwish-fault-before")
            self._events.unregister("after-call", unique_id="picwish-fault-after")
        for timer in self._pending:
            timer.cancel()

    def _fault_for_this_thread(self) -> tuple[Callable, Any] | None:
        name = getattr(self._current, "function_name", None)
        fault = self.faults.get(name) if name else None
        return (fault, self._current.event) if fault is not None else None

    def _before_aws_call(self, params: dict, model: Any, context: dict, **_kw: Any) -> None:
        found = self._fault_for_this_thread()
        if found is not None:
            context["fault_params"] = params
            found[0](f"before {model.service_model.service_id}.{model.name}", found[1], params)

    def _after_aws_call(self, http_response: Any, model: Any, context: dict, **_kw: Any) -> None:
        found = self._fault_for_this_thread()
        if found is not None and http_response is not None and http_response.status_code < 300:
            point = f"after {model.service_model.service_id}.{model.name}"
            found[0](point, found[1], context.get("fault_params"))

    # -- S3 → Lambda: asynchronous, as in AWS -----------------------------------------------------------------

    def _deliver_s3_event(self, account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        """moto invokes the function inside PutObject, before it stores the object's metadata; S3 really
        delivers after the write, asynchronously. Deliveries go to a timer thread, with Lambda's async retries."""
        from moto.awslambda.utils import get_backend

        fn = get_backend(account_id, region_name).get_function(fn_arn)
        # moto's records carry no sequencer; S3's always do, and job identity relies on it when versioning is off.
        for record in event_body.get("Records", []):
            record["s3"]["object"].setdefault("sequencer", f"{next(self._sequencer):016X}")
        for _ in range(self.s3_delivery_copies):
            timer = threading.Timer(self.s3_delivery_delay_s, self._invoke_async, (fn, event_body))
            timer.daemon = True
            self._pending.append(timer)
            timer.start()

    def _invoke_async(self, fn: Any, event: Any, retries: int = 2) -> None:
        for attempt in range(retries + 1):
            _payload, errored, _logs = self.invoke(fn, copy.deepcopy(event))
            if not errored:
                return
            time.sleep(min(2**attempt, 4) * 0.1)  # Lambda waits 1 and 2 minutes; scaled down offline
        with self._lock:
            self.async_failures.append(self.invocations[-1])

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until every queued S3 delivery has run."""
        deadline = time.monotonic() + timeout_s
        for timer in list(self._pending):
            timer.join(max(0.0, deadline - time.monotonic()))

    def preload(self, function_names: Iterable[str], account_id: str, region: str) -> None:
        """Cold-start every function before any traffic. A cold start sets the function's environment on the
        whole process while its module is imported; during traffic, other invocations iterating os.environ
        (requests does, for proxies) could see it change size under them."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(account_id, region)
        for name in function_names:
            self._handler(backend.get_function(name))

    # -- invocation -----------------------------------------------------------------------------------------

    def invoke(self, fn: Any, event: Any) -> tuple[str, bool, str]:
        if isinstance(event, str):
            event = json.loads(event or "{}")
        try:
            handler = self._handler(fn)
        except Exception as exc:  # the runtime itself failed, not the function: what Lambda reports as its own
            payload = json.dumps(
                {"errorMessage": f"{type(exc).__name__}: {exc}", "errorType": "Lambda.ServiceException"}
            )
            return payload, True, ""
        context = LambdaContext(
            function_name=fn.function_name,
            function_version=str(fn.version),
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size or 128),
            timeout_s=float(fn.timeout or 3),
            log_group_name=f"/aws/lambda/{fn.function_name}",
        )
        started = time.monotonic()
        self._current.function_name, self._current.event = fn.function_name, event
        try:
            fault = self.faults.get(fn.function_name)
            if fault is not None:
                fault("before", event, None)
            result = handler(event, context)
            if fault is not None:
                fault("after", event, None)
            payload, error = json.dumps(result, default=str), None
        except (Exception, LambdaCrash) as exc:  # every error becomes Lambda's error payload, as in Lambda
            error = ERROR_TYPES.get(type(exc), type(exc).__name__)
            trace = traceback.format_tb(exc.__traceback__)
            payload = json.dumps({"errorMessage": str(exc), "errorType": error, "stackTrace": trace})
            if not isinstance(exc, LambdaThrottled):  # Lambda logs what the function raised; a throttle never ran
                sys.stderr.write(f"[ERROR] {fn.function_name} {error}: {exc}\n{''.join(trace)}")
        finally:
            self._current.function_name = None
        with self._lock:
            self.invocations.append(Invocation(fn.function_name, event, payload, error, time.monotonic() - started))
        return payload, error is not None, ""

    def _handler(self, fn: Any) -> Callable:
        code = fn.code_bytes or b""
        digest = hashlib.sha256(code).hexdigest()[:16]
        key = (fn.function_name, digest)
        with self._lock:
            cached = self._handlers.get(key)
        if cached is not None:
            return cached
        with _ENV_LOCK:  # one cold start at a time: concurrent first invocations wait for the same import
            with self._lock:
                cached = self._handlers.get(key)
            if cached is not None:
                return cached
            root = self.workdir / digest
            if not root.exists():
                staging = self.workdir / f"{digest}.partial"
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(staging)
                staging.rename(root)
            module_name, _, attribute = fn.handler.rpartition(".")
            path = root / (module_name.replace(".", "/") + ".py")
            name = f"lambda_{fn.function_name}_{digest}".replace("-", "_")
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            environment = {
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
                "AWS_REGION": fn.region,
                **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
            }
            with _patched_environ(environment):
                spec.loader.exec_module(module)  # the cold start: module-level code reads this environment
            handler = getattr(module, attribute)
            with self._lock:
                self._handlers[key] = handler
        return handler


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
