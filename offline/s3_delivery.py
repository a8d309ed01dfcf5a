"""S3 → Lambda as AWS delivers it: after the write, asynchronously, with a sequencer on every record, at least once
(`copies`), and with Lambda's two asynchronous retries; what still fails is kept (`failures`) and handed to
`on_failure` (the function's dead-letter queue)."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from .sandboxes import Invocation

THROTTLED = "Lambda.TooManyRequestsException"

# (function, event, queue) → (payload, errored, logs): the local Lambda service's invoke.
Invoke = Callable[..., tuple[str, bool, str]]


class S3Delivery:
    def __init__(
        self, invoke: Invoke, is_closed: Callable[[], bool], on_failure: Callable[[Invocation], None] | None = None
    ) -> None:
        self._invoke = invoke
        self._is_closed = is_closed
        self._on_failure = on_failure
        self.delay_s = 0.1
        self.copies = 1  # 2 delivers every S3 event twice (S3 is at-least-once)
        self.failures: list[Invocation] = []  # each event its retries did not deliver
        self._lock = threading.Lock()
        self._pending: list[threading.Thread] = []
        self._sequencer = itertools.count(int(time.time() * 1000) << 16)

    def deliver(self, account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        """moto invokes the function inside PutObject, before it stores the object's metadata; S3 really
        delivers after the write, asynchronously. Deliveries go to a thread, with Lambda's async retries."""
        from moto.awslambda.utils import get_backend

        fn = get_backend(account_id, region_name).get_function(fn_arn)
        # moto's records carry no sequencer; S3's always do, and job identity relies on it when versioning is off.
        for record in event_body.get("Records", []):
            record["s3"]["object"].setdefault("sequencer", f"{next(self._sequencer):016X}")
        for _ in range(self.copies):
            self.invoke_async(fn, event_body)

    def invoke_async(self, fn: Any, event: Any) -> None:
        """An asynchronous invocation, as Lambda's event queue makes it: later, on a thread, with its retries."""
        thread = threading.Thread(target=self._invoke_async, args=(fn, event), daemon=True)
        with self._lock:
            self._pending.append(thread)
        thread.start()

    def _invoke_async(self, fn: Any, event: Any, retries: int = 2) -> None:
        time.sleep(self.delay_s)
        attempt = 0
        while not self._is_closed():
            payload, errored, _logs = self._invoke(fn, copy.deepcopy(event), queue=True)
            if not errored:
                return
            last = Invocation(fn.function_name, event, payload, json.loads(payload).get("errorType"), 0.0)
            if last.error == THROTTLED:
                time.sleep(0.2)  # a throttle a fault hook injected: the queue keeps the event; not an attempt
                continue
            if attempt >= retries:
                break
            attempt += 1
            time.sleep(min(2**attempt, 4) * 0.1)  # Lambda waits 1 and 2 minutes; scaled down offline
        if self._is_closed():
            return
        with self._lock:
            self.failures.append(last)
        if self._on_failure is not None:
            self._on_failure(last)

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until every queued delivery has run."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._pending):
            thread.join(max(0.0, deadline - time.monotonic()))
