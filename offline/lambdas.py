"""The local Lambda service: when moto invokes a function (S3 notification, state machine task, API call), the
function's real handler runs in a sandbox process of its own (`sandboxes`), from the code package and layers moto
holds (`function_specs`), with its environment from the template, its own credentials, and its timeout and memory
enforced; sandboxes are reused while warm, within the function's concurrency (`sandbox_pool`); S3 events arrive as
S3 sends them (`s3_delivery`). This module hooks it all into moto and answers each invocation as Lambda does.

Why not moto's own Lambda: it runs code in Docker, and no Docker engine is available here.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
from moto.awslambda import models as lambda_models
from moto.s3 import notifications as s3_notifications

from .function_specs import CodeStore, spec_of
from .s3_delivery import S3Delivery
from .sandbox_pool import SandboxPool
from .sandboxes import (
    Died,
    FunctionSpec,
    Invocation,
    LambdaCrash,
    LambdaThrottled,
    ServiceError,
    resident_bytes,
)

__all__ = ["Invocation", "LambdaCrash", "LambdaRuntime", "LambdaThrottled"]

PASS_THROUGH = ("AWS_ENDPOINT_URL", "POWERTOOLS_TRACE_DISABLED", "PATH", "LANG", "SYSTEMROOT")
ERROR_TYPES = {LambdaCrash: "Lambda.Unknown", LambdaThrottled: "Lambda.TooManyRequestsException"}


class LambdaRuntime:
    def __init__(self, workdir: Path | None = None, *, default_concurrency: int = 4) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="picwish-lambda-") if workdir is None else None
        self.workdir = Path(self._tmp.name if self._tmp else workdir)
        self.default_concurrency = default_concurrency
        self.code = CodeStore(self.workdir)
        self.sandboxes = SandboxPool()
        self.delivery = S3Delivery(self.invoke, lambda: self.closed, on_failure=self._dead_letter)
        # function name → the SQS queue URL of its DeadLetterConfig: where an event goes once its retries failed
        self.dead_letter_queues: dict[str, str] = {}
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []
        self.aws_calls: collections.Counter[str] = collections.Counter()  # "<service>.<Operation>" the code made
        # function name → hook(point, event, params) that may raise. Points: "before" and "after" the handler,
        # "before <Service>.<Operation>" / "after <Service>.<Operation>" around each AWS call it makes (params:
        # the call's parameters), so a crash can land between any two steps of a function.
        self.faults: dict[str, Callable[[str, Any, dict | None], None]] = {}
        # function name → {"AWS_ACCESS_KEY_ID": …, "AWS_SECRET_ACCESS_KEY": …}: its execution role's credentials
        self.credentials: dict[str, dict[str, str]] = {}
        self._original: Any = None
        self._original_s3: Any = None
        self._inherited: dict[str, str] = {}
        self._inherited_credentials: dict[str, str] = {}
        self.closed = False

    # What the local stack and the benchmark read and set, kept where they live.
    cold_starts = property(lambda self: self.sandboxes.cold_starts)
    log_bytes = property(lambda self: self.sandboxes.log_bytes)
    async_failures = property(lambda self: self.delivery.failures)
    one_log_stream = property(
        lambda self: self.sandboxes.one_log_stream, lambda self, on: setattr(self.sandboxes, "one_log_stream", on)
    )
    s3_delivery_copies = property(
        lambda self: self.delivery.copies, lambda self, n: setattr(self.delivery, "copies", n)
    )
    s3_delivery_delay_s = property(
        lambda self: self.delivery.delay_s, lambda self, s: setattr(self.delivery, "delay_s", s)
    )

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
        self.closed = self.sandboxes.closed = False
        self._original = lambda_models.LambdaFunction._invoke_lambda

        def invoke(fn, event=None):  # replaces moto's Docker-based LambdaFunction._invoke_lambda
            return runtime.invoke(fn, event)

        lambda_models.LambdaFunction._invoke_lambda = invoke
        self._original_s3 = s3_notifications._invoke_awslambda
        s3_notifications._invoke_awslambda = self.delivery.deliver

    def uninstall(self) -> None:
        if self._original is not None:
            lambda_models.LambdaFunction._invoke_lambda = self._original
            s3_notifications._invoke_awslambda = self._original_s3
            self._original = None
        self.close()

    def close(self) -> None:
        """Every sandbox ends (the local Lambda service shuts down); queued retries are dropped."""
        self.closed = True
        self.sandboxes.close()

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until every queued S3 delivery has run."""
        self.delivery.wait_idle(timeout_s)

    def preload(self, function_names: Iterable[str], account_id: str, region: str) -> None:
        """One warm sandbox per function before any traffic (what provisioned concurrency buys)."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(account_id, region)
        for name in function_names:
            sandbox, _cold = self.sandboxes.acquire(self._spec(backend.get_function(name)))
            self.sandboxes.release(sandbox)

    def memory_bytes(self) -> int:
        """Resident memory of this process and every sandbox alive: the local stack's footprint."""
        return resident_bytes() + sum(s.rss_bytes() for s in self.sandboxes.all_sandboxes())

    # -- invocation -----------------------------------------------------------------------------------------

    def invoke(self, fn: Any, event: Any, *, queue: bool = False) -> tuple[str, bool, str]:
        """Lambda's answer to one invocation: (payload, errored, logs), as moto expects it."""
        if isinstance(event, str):
            event = json.loads(event or "{}")
        if self.closed:
            stopped = {"errorMessage": "the local Lambda service has stopped", "errorType": "Lambda.ServiceException"}
            return json.dumps(stopped), True, ""
        started = time.monotonic()
        name = fn.function_name
        cold: list[float] = []  # the init time of the sandbox it ran in, when that was a cold start
        try:
            outcome = self._run(fn, event, queue=queue, cold=cold)
            error = outcome.get("error")
            payload = (
                json.dumps({"errorMessage": outcome["message"], "errorType": error, "stackTrace": outcome["trace"]})
                if error
                else outcome["result"]
            )
        except Died as died:
            error = "Lambda.Unknown"
            payload = json.dumps({"errorMessage": str(died), "errorType": error})
            self._error_log().write(f"[ERROR] {name} {died}\n")
        except (Exception, LambdaCrash) as exc:  # a fault hook's or the service's own: Lambda's error payload
            error = self._error_type(exc)
            payload = json.dumps({"errorMessage": str(exc), "errorType": error})
            if not isinstance(exc, LambdaThrottled):  # Lambda logs what the function raised; a throttle never ran
                self._error_log().write(f"[ERROR] {name} {error}: {exc}\n")
        with self._lock:
            self.invocations.append(
                Invocation(name, event, payload, error, time.monotonic() - started, cold[0] if cold else None)
            )
        return payload, error is not None, ""

    def _run(self, fn: Any, event: Any, *, queue: bool, cold: list[float]) -> dict:
        """The handler's outcome in a sandbox; a cold start's init time is added to `cold`."""
        fault = self.faults.get(fn.function_name)
        spec = self._spec(fn)
        if fault is not None:
            fault("before", event, None)
        sandbox, started_cold = self.sandboxes.acquire(spec, queue=queue)
        if started_cold:
            cold.append(sandbox.init_ms)
        try:
            with self.sandboxes.busy(sandbox):
                outcome = sandbox.run(event, fault)
            with self._lock:
                self.aws_calls.update(outcome.get("aws_calls", {}))
            if fault is not None:
                fault("after", event, None)  # a crash here: the answer was lost with the process
        except BaseException:  # died, crashed, or its channel broke: never handed out again
            self.sandboxes.discard(sandbox)
            raise
        self.sandboxes.release(sandbox)
        return outcome

    def _dead_letter(self, failed: Invocation) -> None:
        """As Lambda does with the function's role: the event, and why it failed, to its dead-letter queue."""
        queue = self.dead_letter_queues.get(failed.function_name)
        if queue is None:
            return
        keys = self.credentials.get(failed.function_name) or self._inherited_credentials
        sqs = boto3.client(
            "sqs",
            endpoint_url=self._inherited.get("AWS_ENDPOINT_URL"),
            aws_access_key_id=keys.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=keys.get("AWS_SECRET_ACCESS_KEY"),
        )
        message = json.loads(failed.result).get("errorMessage", "") if failed.result else ""
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=json.dumps(failed.event),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": str(message)[:1000] or "failed"},
            },
        )

    @staticmethod
    def _error_type(exc: BaseException) -> str:
        if isinstance(exc, ServiceError):
            return "Lambda.ServiceException"
        return ERROR_TYPES.get(type(exc), type(exc).__name__)

    def _error_log(self) -> Any:
        return sys.stdout if self.one_log_stream else sys.stderr

    def _spec(self, fn: Any) -> FunctionSpec:
        credentials = self.credentials.get(fn.function_name) or self._inherited_credentials
        return spec_of(
            fn, self.code, inherited=self._inherited, credentials=credentials, concurrency=self.default_concurrency
        )
