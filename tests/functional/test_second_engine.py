"""The state machine on a second, independent engine: every path of statemachine/pipeline.asl.json runs on moto's
Step Functions (LocalStack's interpreter, what the local stack uses) and on aws-local-stepfunctions (a separate
TypeScript implementation of ASL, `make asl-engine` installs it), with the same scripted step answers; the states
entered, each Task's attempts, the status, the error and the final output must be the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from statemachine.definition import API_TRANSIENT, KEY_BUSY, LAMBDA_FAILED, definition
from tests.support import asl_engines

if shutil.which("node") is None or not (asl_engines.ENGINE / "node_modules").is_dir():
    pytest.fail("the second engine is not installed: run `make asl-engine` (Node >= 20)", pytrace=False)

EVENTS = Path(__file__).resolve().parents[2] / "events"
JOB = json.loads((EVENTS / "state-create.json").read_text())["job"]
INPUT = {"job": JOB, "create": {"status": "new"}, "poll": {"phase": "processing"}, "error": None}

CREATED = {"output": {"status": "created", "task_id": "t-1", "wait_s": 0}}
WAIT = {"output": {"status": "wait", "wait_s": 0}}
PROCESSING = {"output": {"phase": "processing", "wait_s": 0}}
DONE = {"output": {"phase": "done", "outputs": {"image": {"key": "staging/x"}}}}
STORED = {"output": {"status": "succeeded", "outputs": {"image": "results/x/image.jpg"}}}
RECORDED = {"output": {"status": "failed", "reason": "task failed"}}
SUPERSEDED = {"output": {"status": "superseded"}}


def _errors(name: str, times: int) -> list[dict]:
    return [{"error": name, "cause": f"{name} (scripted)"}] * times


def _gives_up(retry: dict) -> int:
    return retry["MaxAttempts"] + 1  # the first attempt and every retry


DONE_PATH = {"CreateTask": [CREATED], "PollTask": [DONE], "Finalize": [STORED]}
SCENARIOS: dict[str, dict[str, list[dict]]] = {
    "done at the first poll": DONE_PATH,
    "processing, then done": {**DONE_PATH, "PollTask": [PROCESSING, PROCESSING, DONE]},
    "a create that waits for its slot": {**DONE_PATH, "CreateTask": [WAIT, WAIT, CREATED]},
    "a create that hands its slot over": {"CreateTask": [{"output": {"status": "handed over"}}]},
    "a create that failed": {
        "CreateTask": [{"output": {"status": "failed", "reason": "rejected"}}],
        "RecordFailure": [RECORDED],
    },
    "the task failed": {
        "CreateTask": [CREATED],
        "PollTask": [{"output": {"phase": "failed"}}],
        "RecordFailure": [RECORDED],
    },
    "the deadline": {
        "CreateTask": [CREATED],
        "PollTask": [PROCESSING, {"output": {"phase": "timeout"}}],
        "RecordFailure": [RECORDED],
    },
    "replaced before its result": {**DONE_PATH, "Finalize": [SUPERSEDED]},
    "replaced before its failure record": {
        "CreateTask": [CREATED],
        "PollTask": [{"output": {"phase": "failed"}}],
        "RecordFailure": [SUPERSEDED],
    },
    "a result that could not be stored": {**DONE_PATH, "Finalize": [{"output": {"status": "failed"}}]},
    "throttled steps, waited out": {
        "CreateTask": [*_errors("Lambda.TooManyRequestsException", 3), CREATED],
        "PollTask": [*_errors("Lambda.TooManyRequestsException", 12), DONE],
        "Finalize": [STORED],
    },
    "a step retried, then through": {**DONE_PATH, "PollTask": [*_errors("Lambda.Unknown", 2), DONE]},
    "an error no Retry names, caught": {**DONE_PATH, "Finalize": _errors("ValueError", 1), "RecordFailure": [RECORDED]},
    "the failure step keeps failing": {
        "CreateTask": [{"output": {"status": "failed", "reason": "rejected"}}],
        "RecordFailure": _errors("Lambda.ServiceException", _gives_up(LAMBDA_FAILED)),
    },
    "the API unreachable until the retries give up": {
        "CreateTask": [CREATED],
        "PollTask": _errors("TransientApiError", _gives_up(API_TRANSIENT)),
        "RecordFailure": [RECORDED],
    },
    "the key's record lock held until the retries give up": {
        **DONE_PATH,
        "Finalize": _errors("KeyBusy", _gives_up(KEY_BUSY)),
        "RecordFailure": [RECORDED],
    },
    **{
        f"{error} until the retries give up": {
            "CreateTask": _errors(error, _gives_up(LAMBDA_FAILED)),
            "RecordFailure": [RECORDED],
        }
        for error in LAMBDA_FAILED["ErrorEquals"]
        if not error.startswith("States.")  # a real timeout below: no function raises the engine's own errors
    },
}

# The same machine with a one-second Task timeout and a three-second machine timeout, the steps scripted to be
# slower than that: a Task's States.Timeout retried, and the machine's own timeout.
SHORT_LIVED = {
    "a step that outlives its timeout, retried": {
        **DONE_PATH,
        "CreateTask": [{"delay_ms": 1500, **CREATED}, CREATED],
    },
    "the machine's timeout": {"CreateTask": [CREATED], "PollTask": [{"delay_ms": 4000, **DONE}]},
}


@pytest.fixture(scope="module")
def machine() -> dict:
    return asl_engines.tasks_named_for_their_states(definition())


@pytest.fixture(scope="module")
def short_lived(machine) -> dict:
    scaled = json.loads(json.dumps(machine))
    scaled["TimeoutSeconds"], scaled["States"]["CreateTask"]["TimeoutSeconds"] = 3, 1
    return scaled


def _batches(machine: dict, short_lived: dict) -> list[tuple[dict, dict[str, dict]]]:
    return [(machine, SCENARIOS), (short_lived, SHORT_LIVED)]


@pytest.fixture(scope="module")
def on_node(machine, short_lived) -> dict[str, dict]:
    found = {}
    for definition_, scripts in _batches(machine, short_lived):
        scenarios = [{"input": INPUT, "script": script} for script in scripts.values()]
        found.update(zip(scripts, asl_engines.on_node(definition_, scenarios), strict=True))
    return found


@pytest.fixture(scope="module")
def on_moto(machine, short_lived) -> dict[str, dict]:
    found = {}
    for definition_, scripts in _batches(machine, short_lived):
        scenarios = [{"input": INPUT, "script": script} for script in scripts.values()]
        with pytest.MonkeyPatch.context() as patch:
            found.update(zip(scripts, asl_engines.on_moto(definition_, scenarios, patch), strict=True))
    return found


@pytest.mark.parametrize("scenario", [*SCENARIOS, *SHORT_LIVED])
def test_both_engines_take_the_same_path_to_the_same_end(scenario, on_node, on_moto):
    assert on_moto[scenario] == on_node[scenario]


def test_the_scenarios_enter_every_state_of_the_machine(machine, on_node):
    entered = {name for normal in on_node.values() for name, _attempts in normal["entered"]}
    assert entered == set(machine["States"])


def test_the_engines_differ_on_a_function_error_named_like_an_engine_error(machine, monkeypatch):
    """Written down, on no path of ours (no step raises a `States.*` error): a Lambda function error named
    States.Timeout ends the execution with States.Runtime on moto; aws-local-stepfunctions retries it as a
    timeout. Real Task timeouts agree on both (the scenario above)."""
    script = {**DONE_PATH, "CreateTask": [*_errors("States.Timeout", 1), CREATED]}
    [moto] = asl_engines.on_moto(machine, [{"input": INPUT, "script": script}], monkeypatch)
    [node] = asl_engines.on_node(machine, [{"input": INPUT, "script": script}])
    assert (moto["status"], moto["error"], moto["entered"]) == ("FAILED", "States.Runtime", [("CreateTask", 1)])
    assert (node["status"], node["entered"][0]) == ("SUCCEEDED", ("CreateTask", 2))
