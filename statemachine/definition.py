"""The state machine, described once in Python: each Task's Retry and Catch are written here one time, and
`pipeline.asl.json` (what template.yaml deploys) is generated from it. `python -m statemachine.definition` writes
the file; a test fails when the two differ."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

ASL_PATH = Path(__file__).with_name("pipeline.asl.json")

# The machine's timeout is a place in the create queue plus a job's own life (create, polls, results, record).
# An execution whose create slot lies past the queue horizon hands it to a fresh execution when the horizon comes
# (picwish_pipeline.handover), so no execution times out in the queue. Two days hold ~160,000 creates at QPS 2.
MACHINE_TIMEOUT_S = 172_800
JOB_LIFE_S = 21_600

# Lambda's own refusals and failures, retried by every Task. A throttle, like a 429, is waited out: no attempt
# limit but the largest ASL allows, so only the machine's own timeout ends a job that keeps being throttled.
LAMBDA_THROTTLED = {
    "ErrorEquals": ["Lambda.TooManyRequestsException"],
    "IntervalSeconds": 1,
    "BackoffRate": 2.0,
    "MaxAttempts": 99999999,
    "MaxDelaySeconds": 30,
    "JitterStrategy": "FULL",
}
LAMBDA_FAILED = {
    "ErrorEquals": [
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.Unknown",
        "States.Timeout",
    ],
    "IntervalSeconds": 1,
    "BackoffRate": 2.0,
    "MaxAttempts": 6,
    "MaxDelaySeconds": 30,
    "JitterStrategy": "FULL",
}
# The API unreachable or answering 5xx where a repeat cannot pay twice (the steps raise it only there).
API_TRANSIENT = {
    "ErrorEquals": ["TransientApiError"],
    "IntervalSeconds": 2,
    "BackoffRate": 2.0,
    "MaxAttempts": 5,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}
# Another job of the same key holds the key's record lock (picwish_pipeline.keyrecord): it lets go within seconds.
KEY_BUSY = {
    "ErrorEquals": ["KeyBusy"],
    "IntervalSeconds": 2,
    "BackoffRate": 2.0,
    "MaxAttempts": 8,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}


def task(
    function: str,
    *,
    carries: tuple[str, ...],
    result: str,
    next_state: str,
    timeout_s: int = 60,
    api: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Lambda step: its input is the named parts of the state plus the execution's name (the create's idempotency
    key) and any `extra` parameters; any error that outlives the retries goes to RecordFailure with the error in
    `$.error`."""
    parameters = {f"{part}.$": f"$.{part}" for part in carries if part != "error"}
    parameters["execution.$"] = "$$.Execution.Name"
    parameters.update(extra or {})
    if "error" in carries:
        parameters["error.$"] = "$.error"
    return {
        "Type": "Task",
        "Resource": f"${{{function}FunctionArn}}",
        "Parameters": parameters,
        "ResultPath": f"$.{result}",
        "TimeoutSeconds": timeout_s,
        # Copies: a caller that scales one Task's retries (a test's short-lived machine) changes no other.
        "Retry": copy.deepcopy([LAMBDA_THROTTLED, LAMBDA_FAILED, *([API_TRANSIENT] if api else []), KEY_BUSY]),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}],
        "Next": next_state,
    }


def wait(seconds_path: str, next_state: str) -> dict[str, Any]:
    return {"Type": "Wait", "SecondsPath": seconds_path, "Next": next_state}


def choice(variable: str, routes: dict[str, str], default: str) -> dict[str, Any]:
    choices = [{"Variable": variable, "StringEquals": value, "Next": target} for value, target in routes.items()]
    return {"Type": "Choice", "Choices": choices, "Default": default}


def definition(machine_timeout_s: int = MACHINE_TIMEOUT_S, job_life_s: int = JOB_LIFE_S) -> dict[str, Any]:
    return {
        "Comment": "One upload: create the API task in a QPS slot, poll until it ends, store the results or a failure "
        "record.",
        "StartAt": "CreateTask",
        "TimeoutSeconds": machine_timeout_s,
        "States": {**_creating(machine_timeout_s - job_life_s), **_polling_and_storing(), **_ends()},
    }


def _creating(queue_horizon_s: int) -> dict[str, Any]:
    """The create, waiting for its slot (or handing it over past the queue horizon)."""
    context = {"machine.$": "$$.StateMachine.Id", "started_at.$": "$$.Execution.StartTime"}
    return {
        "CreateTask": task(
            "Create",
            carries=("job", "create"),
            result="create",
            next_state="Created?",
            extra={**context, "queue_horizon_s": queue_horizon_s},
        ),
        "Created?": choice(
            "$.create.status",
            {"created": "WaitForFirstPoll", "wait": "WaitForCreateSlot", "handed over": "HandedOver"},
            "RecordFailure",
        ),
        "WaitForCreateSlot": wait("$.create.wait_s", "CreateTask"),
        "WaitForFirstPoll": wait("$.create.wait_s", "PollTask"),
    }


def _polling_and_storing() -> dict[str, Any]:
    """The polls until the task ends, then its results stored, or its failure recorded."""
    record_failure = task(
        "RecordFailure", carries=("job", "create", "poll", "error"), result="result", next_state="Recorded?", api=False
    )
    # The last resort has nowhere else to go: its failure ends the execution, and the backstop writes the record.
    record_failure["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "RecordingFailed"}]
    return {
        "PollTask": task("Poll", carries=("job", "create", "poll"), result="poll", next_state="Done?"),
        "Done?": {
            **choice("$.poll.phase", {"done": "Finalize", "processing": "WaitForNextPoll"}, "RecordFailure"),
            "Comment": "The poll step judged the answer: done, processing, or anything else (failed, timeout) "
            "to its record.",
        },
        "WaitForNextPoll": wait("$.poll.wait_s", "PollTask"),
        "Finalize": task(
            "Finalize", carries=("job", "create", "poll"), result="result", next_state="Stored?", timeout_s=120
        ),
        "Stored?": choice("$.result.status", {"succeeded": "Stored", "superseded": "Superseded"}, "JobFailed"),
        "RecordFailure": record_failure,
        "Recorded?": choice("$.result.status", {"superseded": "Superseded"}, "JobFailed"),
    }


def _ends() -> dict[str, Any]:
    return {
        "Stored": {"Type": "Succeed"},
        "HandedOver": {
            "Type": "Succeed",
            "Comment": "The queue outlasted this execution's horizon: a fresh execution of the upload holds its "
            "create slot.",
        },
        "Superseded": {
            "Type": "Succeed",
            "Comment": "A newer upload (or a delete) replaced this one: its record is the key's, this job's is "
            "under superseded/.",
        },
        "JobFailed": {
            "Type": "Fail",
            "Error": "JobFailed",
            "Cause": "The job failed; its failure record (failed/<key>.json) says why.",
        },
        "RecordingFailed": {
            "Type": "Fail",
            "Error": "RecordingFailed",
            "Cause": "The failure record could not be written; the EventBridge backstop writes it.",
        },
    }


def render() -> str:
    return json.dumps(definition(), indent=2) + "\n"


if __name__ == "__main__":
    ASL_PATH.write_text(render())
    sys.stdout.write(f"wrote {ASL_PATH}\n")
