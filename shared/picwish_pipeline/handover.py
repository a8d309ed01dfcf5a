"""A queue deeper than an execution's life: a create whose slot lies past its execution's queue horizon waits until
the horizon, then hands the slot it holds to a fresh execution of the same upload (continue-as-new) and ends.

The machine's TimeoutSeconds is the queue horizon plus a job's own life (statemachine.definition), so an execution
never times out waiting in the queue, however long the queue is, and a job that started still has its whole life.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime

from botocore.exceptions import ClientError

from .payloads import CreateState, StepInput, Waiting
from .services import Services
from .starts import start_admitted
from .uploads import EXECUTION_NAME_MAX

HANDED_OVER = "handed over"
_SUFFIX = re.compile(r"-h\d+$")  # execution names otherwise end in a hex digest


def horizon_of(payload: StepInput) -> float | None:
    """The last moment this execution may still create: its start plus the machine's queue horizon."""
    if payload.machine is None or payload.started_at is None or payload.queue_horizon_s is None:
        return None
    started = datetime.fromisoformat(payload.started_at.replace("Z", "+00:00")).timestamp()
    return started + float(payload.queue_horizon_s)


def wait_or_hand_over(
    svc: Services, payload: StepInput, waiting: CreateState, slot: Waiting | None, *, wait_s: int = 0
) -> CreateState:
    """Wait for the slot if it comes within the horizon, else wait for the horizon, and there hand over. Without
    a slot (a create the credit budget holds), wait `wait_s` the same way; it takes a place when it wakes."""
    horizon = horizon_of(payload)
    until = slot.slot_at if slot is not None else svc.clock() + wait_s
    if horizon is None or until <= horizon:
        return waiting.waiting(slot) if slot is not None else replace(waiting, slot_at=None, wait_s=wait_s)
    if horizon - svc.clock() >= 1:
        return replace(waiting.waiting(slot) if slot else waiting, wait_s=int(horizon - svc.clock()))
    return hand_over(svc, payload, replace(waiting, slot_at=slot.slot_at if slot else None))


def hand_over(svc: Services, payload: StepInput, waiting: CreateState) -> CreateState:
    """Start the next execution of this upload with the slot held. Its input depends only on this one's, so a
    retried step starts the same execution (StartExecution is idempotent for a running one; a closed one means
    it already went through)."""
    count = (waiting.handovers or 0) + 1
    held = replace(waiting, status="wait", wait_s=None, spare=None, handovers=count)
    execution_input = json.dumps(StepInput(payload.job, create=held).to_dict(), sort_keys=True)
    try:
        start_admitted(
            svc,
            stateMachineArn=str(payload.machine),
            name=next_name(str(payload.execution), count),
            input=execution_input,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
    return replace(held, status=HANDED_OVER, wait_s=None)


def next_name(name: str, count: int) -> str:
    suffix = f"-h{count}"
    return _SUFFIX.sub("", name)[: EXECUTION_NAME_MAX - len(suffix)] + suffix
