"""Step Functions' execution status changes, delivered to the template's EventBridge rules as AWS delivers them.

moto's Step Functions emits no events when an execution ends, and moto's EventBridge cannot target a Lambda
function; so, offline, nothing would run the backstop for an execution that ended FAILED, TIMED_OUT or ABORTED.
Here each execution's end becomes the event AWS sends ("Step Functions Execution Status Change", source
`aws.states`), matched against every enabled rule of the default bus by moto's own pattern matching, and handed to
each Lambda target as an asynchronous invocation (with Lambda's retries), as EventBridge invokes it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from moto.events.models import events_backends
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

DETAIL_TYPE = "Step Functions Execution Status Change"
_LOCK = threading.Lock()
_original_terminated = BaseExecutionWorkerCommunication.terminated
# Where a Lambda target's event goes: (function ARN, account, region, event) → None. None: not delivered.
_deliver: list[Callable[[str, str, str, dict], None]] = []


def _millis(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def status_change_event(execution: Any) -> dict[str, Any]:
    """The event AWS sends when an execution ends (its `detail` as Step Functions writes it)."""
    status = execution.exec_status.value
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine.arn,
            "name": execution.name,
            "status": status,
            "startDate": _millis(execution.start_date),
            "stopDate": _millis(execution.stop_date),
            "input": json.dumps(execution.input_data),
            "output": None if execution.output is None else json.dumps(execution.output),
            "error": execution.error,
            "cause": execution.cause,
        },
    }


def _terminated(self: Any) -> None:
    _original_terminated(self)
    if not _deliver:
        return
    execution = self.execution
    event = status_change_event(execution)
    bus = events_backends[execution.account_id][execution.region_name].event_buses.get("default")
    for rule in list(bus.rules.values()) if bus is not None else []:
        if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
            continue
        for target in rule.targets:
            if ":lambda:" in target["Arn"]:
                _deliver[0](target["Arn"], execution.account_id, execution.region_name, event)


def deliver_execution_status_changes(invoke_async: Callable[[Any, dict], None]) -> None:
    """From now on, each execution's end goes to the rules' Lambda targets through `invoke_async(fn, event)`."""
    from moto.awslambda.utils import get_backend

    def deliver(arn: str, account: str, region: str, event: dict) -> None:
        invoke_async(get_backend(account, region).get_function(arn), event)

    with _LOCK:
        _deliver[:] = [deliver]
        BaseExecutionWorkerCommunication.terminated = _terminated


def stop_delivering() -> None:
    with _LOCK:
        _deliver.clear()
