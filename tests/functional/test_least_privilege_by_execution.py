"""Least privilege, proven by running it: the whole pipeline runs every path of every function (results of each
kind, bad input, a failed task, a key re-uploaded mid-job, a refused re-upload, the backstop, a backfill) with IAM
enforced, every request the policies authorized is journaled (role, action, resource), and each role's grants are
compared with what it used — the functions' roles and the state machines', action by action and resource pattern
by resource pattern."""

from __future__ import annotations

import ast
import fnmatch
import json
import time
from pathlib import Path

import boto3
import pytest

from offline.harness import build
from offline.moto_iam import journal_calls
from offline.record_reader import read_records
from tests.support import images

EVENTS = Path(__file__).resolve().parents[2] / "events"
RECTANGLE = '[{"x":0,"y":0,"width":8,"height":8}]'

# Granted for the Lambda and Step Functions services themselves, never called by the code, so no run can show
# them used: role → policy → why it is granted.
FUNCTION_SERVICE = {
    "LambdaLogs": "Lambda writes the function's logs to its group with it",
    "LambdaTraces": "Lambda sends the function's traces (Tracing: Active)",
}
MACHINE_SERVICE = {
    "LogDelivery": "Step Functions delivers the execution logs to their group with it",
    "Traces": "Step Functions sends traces (Tracing enabled)",
}
DEAD_LETTERS = FUNCTION_SERVICE | {"DeadLetterQueuePolicy": "Lambda sends an event whose retries failed to the DLQ"}
SERVICE_USE: dict[str, dict[str, str]] = {
    "SubmitFunction": DEAD_LETTERS,
    "BackstopFunction": DEAD_LETTERS,
    **{name: FUNCTION_SERVICE for name in ("CreateFunction", "PollFunction", "FinalizeFunction")},
    "RecordFailureFunction": FUNCTION_SERVICE,
    "BackfillFunction": FUNCTION_SERVICE,
    "PipelineStateMachine": MACHINE_SERVICE,
    "BackfillStateMachine": MACHINE_SERVICE
    | {"RunByStepFunctions": "Step Functions runs the map's items and hears of .sync jobs' ends (moto in-process)"},
}


def _key_record_version(pipeline, key: str, version: str, timeout_s: float = 60) -> tuple[str, dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for kind, record in read_records(pipeline.s3, pipeline.stack.output_bucket, key):
            if record["source"].get("version_id") == version:
                return kind, record
        time.sleep(0.05)
    raise AssertionError(f"no record of {key} at {version}")


def _put(pipeline, key: str, body: bytes, metadata: dict | None = None) -> str:
    bucket = pipeline.stack.input_bucket
    return pipeline.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})["VersionId"]


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _invoke(pipeline, logical_id: str, payload: dict) -> dict:
    function = pipeline.stack.resources[logical_id]
    answer = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    body = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, body
    return body


def _s3_event(key: str, version: str) -> dict:
    event = _event("s3-put-idphoto.json")
    event["Records"][0]["s3"]["object"].update(key=key, versionId=version)
    return event


def _backstop_event(upload: dict) -> dict:
    failed = _event("eventbridge-execution-failed.json")
    state = json.loads(failed["detail"]["input"])
    state["job"]["upload"].update(upload)
    failed["detail"]["input"] = json.dumps(state)
    return failed


def _every_path(pipeline) -> None:
    """Drive each function through each of its branches that touches AWS."""
    _results_and_failures(pipeline)
    _replaced_while_running(pipeline)
    _missing_inputs(pipeline)
    _handed_over(pipeline)
    _backfilled(pipeline)
    deadline = time.monotonic() + 60
    while any(e["status"] == "RUNNING" for e in pipeline.executions()):
        assert time.monotonic() < deadline, "executions still running"
        time.sleep(0.1)
    pipeline.runtime.wait_idle()


def _results_and_failures(pipeline) -> None:
    """Results of each kind (a mask read, many outputs, results sent as bytes), refusals by submit and by the API,
    a create the API answered without a task, and a failed key that then succeeds."""
    pipeline.upload("masks/inpaint/lp/shoe.png", images.mask(80, 60, box=(10, 10, 29, 29)))
    pipeline.mock.add_rule(filename="refused.jpg", state=-7)
    pipeline.mock.add_rule(filename="no-task.jpg", create_status=400)
    jobs = {
        "incoming/idphoto/lp/me.jpg": (images.portrait(), {}),
        "incoming/idphoto/lp/bytes.jpg": (images.portrait(), {"return_type": "2"}),
        "incoming/inpaint/lp/shoe.png": (images.photo(80, 60, fmt="PNG"), {}),
        "incoming/inpaint/lp/rect.png": (images.photo(80, 60, fmt="PNG"), {"rectangles": RECTANGLE}),  # no mask
        "incoming/clothing-segmentation/lp/look.jpg": (images.portrait(), {"class_type": "3", "output_type": "3"}),
        "incoming/idphoto/lp/bad.jpg": (images.portrait(), {"size": "huge"}),
        "incoming/idphoto/lp/refused.jpg": (images.portrait(), {}),
        "incoming/idphoto/lp/no-task.jpg": (images.portrait(), {}),
    }
    versions = {key: _put(pipeline, key, body, meta) for key, (body, meta) in jobs.items()}
    for key, version in versions.items():
        _key_record_version(pipeline, key, version)
    bad = "incoming/idphoto/lp/bad.jpg"  # now valid: its result replaces the failure record
    assert _key_record_version(pipeline, bad, _put(pipeline, bad, images.portrait()))[0] == "result"
    done = "incoming/idphoto/lp/me.jpg"  # now refused: its failure record replaces the result and its outputs
    assert _key_record_version(pipeline, done, _put(pipeline, done, images.portrait(), {"size": "huge"}))[0] == "failed"


def _replaced_while_running(pipeline) -> None:
    """Older versions recorded under superseded/: a job that finishes or fails after a newer upload, an old event
    delivered again to submit, and the backstop for an old version's execution."""
    pipeline.mock.add_rule(filename="slow.jpg", polls=6)
    pipeline.mock.add_rule(filename="fails-late.jpg", state=-7, polls=6)
    for name in ("slow.jpg", "fails-late.jpg"):
        key = f"incoming/idphoto/lp/{name}"
        older = _put(pipeline, key, images.portrait())
        _created(pipeline, name)
        _key_record_version(pipeline, key, _put(pipeline, key, images.portrait(90, 120)))
        _superseded(pipeline, key, older)
    key = "incoming/idphoto/lp/again.jpg"
    older = _put(pipeline, key, images.portrait(), {"size": "huge"})
    _key_record_version(pipeline, key, older)
    _key_record_version(pipeline, key, _put(pipeline, key, images.portrait()))
    _invoke(pipeline, "SubmitFunction", _s3_event(key, older))
    _superseded(pipeline, key, older)
    backstop = _invoke(pipeline, "BackstopFunction", _backstop_event({"key": key, "version_id": older}))
    assert backstop["status"] == "superseded", backstop


def _missing_inputs(pipeline) -> None:
    """A key deleted while its job runs, and steps handed a key that is gone: S3 answers them 404 only because
    each may list the input bucket. The backstop and the failure step then write the key's "object missing"
    record in place of its result."""
    pipeline.mock.add_rule(filename="vanish.jpg", polls=6)
    key = "incoming/idphoto/lp/vanish.jpg"
    _put(pipeline, key, images.portrait())
    _created(pipeline, "vanish.jpg")
    pipeline.s3.delete_object(Bucket=pipeline.stack.input_bucket, Key=key)
    gone = "incoming/idphoto/lp/gone.jpg"
    _key_record_version(pipeline, gone, _put(pipeline, gone, images.portrait()))
    pipeline.s3.delete_object(Bucket=pipeline.stack.input_bucket, Key=gone)
    _invoke(pipeline, "BackstopFunction", _backstop_event({"key": gone}))
    [(kind, record)] = read_records(pipeline.s3, pipeline.stack.output_bucket, gone)
    assert (kind, record["reason"]) == ("failed", "object missing")
    create = _event("state-create.json")
    create["job"]["upload"]["key"] = gone
    _invoke(pipeline, "CreateFunction", {**create, "execution": "lp-gone"})
    failure = _event("state-record-failure-caught.json")
    failure["job"]["upload"]["key"] = gone
    _invoke(pipeline, "RecordFailureFunction", failure)


def _handed_over(pipeline) -> None:
    """A create past its execution's queue horizon hands its slot to a fresh execution; a newer upload then
    replaces the one it carries, so that execution ends as superseded."""
    key = "incoming/idphoto/lp/queued.jpg"
    older = _put(pipeline, key, images.portrait(), {"size": "huge"})  # refused by submit: no execution of its own
    _key_record_version(pipeline, key, older)
    create = _event("state-create.json")
    create["job"]["upload"].update(key=key, version_id=older)
    create.update(machine=pipeline.stack.state_machine_arn, started_at="2026-01-01T00:00:00Z", queue_horizon_s=1)
    create["create"] = {"status": "wait", "slot_at": time.time() + 5}
    assert _invoke(pipeline, "CreateFunction", {**create, "execution": "lp-queued"})["status"] == "handed over"
    _key_record_version(pipeline, key, _put(pipeline, key, images.portrait()))
    _superseded(pipeline, key, older)


def _backfilled(pipeline) -> None:
    """A backfill over keys never processed (one refused, one with a mask to read), one with a result and one
    that failed: the map lists them, writes its results, and its item starts, reruns or skips each."""
    pipeline.mock.add_rule(filename="flaky.jpg", state=-7)
    flaky = "incoming/idphoto/lp-backfill/flaky.jpg"
    _key_record_version(pipeline, flaky, _put(pipeline, flaky, images.portrait()))
    pipeline.mock.clear_rules()
    done = "incoming/idphoto/lp-backfill/done.jpg"
    _key_record_version(pipeline, done, _put(pipeline, done, images.portrait()))
    placed = {
        "incoming/idphoto/lp-backfill/never.jpg": images.portrait(),
        "incoming/idphoto/lp-backfill/notes.jpg": b"not an image",
        "incoming/inpaint/lp-backfill/shoe.png": images.photo(80, 60, fmt="PNG"),
    }
    pipeline.place(placed)
    execution_input = {"bucket": pipeline.stack.input_bucket, "prefix": "incoming/", "reprocess": False, "jobs": 4}
    machine = pipeline.stack.outputs["BackfillStateMachineArn"]
    arn = pipeline.sfn.start_execution(stateMachineArn=machine, input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + 60
    while pipeline.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the backfill did not end"
        time.sleep(0.1)
    for key in [flaky, *placed]:
        _key_record_version(
            pipeline, key, pipeline.s3.head_object(Bucket=pipeline.stack.input_bucket, Key=key)["VersionId"]
        )


def _created(pipeline, filename: str, timeout_s: float = 30) -> None:
    """Until the API has been asked to create a task for `filename`."""
    deadline = time.monotonic() + timeout_s
    while not any(filename in json.dumps(e.get("fields") or {}) for e in pipeline.mock.requests(method="POST")):
        assert time.monotonic() < deadline, f"no create for {filename}"
        time.sleep(0.05)


def _superseded(pipeline, key: str, version: str, timeout_s: float = 60) -> None:
    prefix = f"superseded/{key.removeprefix('incoming/')}/"
    deadline = time.monotonic() + timeout_s
    while True:
        listed = pipeline.s3.list_objects_v2(Bucket=pipeline.stack.output_bucket, Prefix=prefix).get("Contents", [])
        if any(version in o["Key"] for o in listed):
            return
        assert time.monotonic() < deadline, f"no superseded record of {key} at {version}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def run():
    parameters = {"ApiQps": "20", "WaitScale": "0.01", "CreditBudgetPerDay": "100000"}  # creates read the budget
    pipeline, stack = build(("--qps", "0", "--time-scale", "0.01"), parameters, server=True)
    with stack, journal_calls() as journal:
        _every_path(pipeline)
        yield pipeline, _by_role(pipeline, journal)


def _by_role(pipeline, journal) -> dict[str, set[tuple[str, str]]]:
    """The (action, resource) pairs each role's principal was authorized for, by the role's logical id."""
    users = {f"{name}-role": logical for logical, name in pipeline.stack.functions().items()}
    users |= {f"{logical}-role": logical for logical in pipeline.stack.state_machines()}
    used: dict[str, set[tuple[str, str]]] = {}
    for user, action, resource in journal:
        if user in users:
            used.setdefault(users[user], set()).add((action.lower(), resource))
    return used


def _grants(pipeline) -> dict[str, list[dict]]:
    """Each role's Allow statements as deployed (inline policies), and its attached managed policies."""
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    roles = {
        logical: lam.get_function(FunctionName=name)["Configuration"]["Role"]
        for logical, name in pipeline.stack.functions().items()
    }
    sfn = boto3.client("stepfunctions")
    for logical, arn in pipeline.stack.state_machines().items():
        roles[logical] = sfn.describe_state_machine(stateMachineArn=arn)["roleArn"]
    grants = {}
    for logical, arn in roles.items():
        role = arn.rsplit("/", 1)[-1]
        statements = []
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            document = ast.literal_eval(document) if isinstance(document, str) else document
            statements += [
                {"policy": name, "actions": [a.lower() for a in _list(s["Action"])], "resources": _list(s["Resource"])}
                for s in _list(document["Statement"])
                if s["Effect"] == "Allow"
            ]
        managed = [{"policy": arn, "actions": ["<managed>"], "resources": []} for arn in _managed(pipeline, role)]
        grants[logical] = statements + managed
    return grants


def _managed(pipeline, role_name: str) -> list[str]:
    """The managed policies the template (as the SAM transform rendered it) attaches to a role."""
    body = boto3.client("cloudformation").get_template(StackName=pipeline.stack.name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role" and role_name.startswith(f"{pipeline.stack.name}-{logical}"):
            return list(resource["Properties"].get("ManagedPolicyArns", []))
    raise AssertionError(f"no role {role_name} in the template")


def _list(value):
    return value if isinstance(value, list) else [value]


def _allows(statement: dict, action: str, resource: str) -> bool:
    return action in statement["actions"] and any(fnmatch.fnmatchcase(resource, p) for p in statement["resources"])


def _unused(role: str, statement: dict, used: set[tuple[str, str]]) -> list[str]:
    """The statement's actions and resource patterns no call of the role used (none, for a policy only a service
    uses)."""
    if statement["policy"] in SERVICE_USE.get(role, {}):
        return []
    actions = statement["actions"]
    unused = [a for a in actions if not any(_allows(statement, a, r) for x, r in used if x == a)]
    unused += [
        p for p in statement["resources"] if not any(a in actions and fnmatch.fnmatchcase(r, p) for a, r in used)
    ]
    return unused


def test_every_role_is_granted_exactly_what_its_paths_used(run):
    pipeline, used = run
    grants = _grants(pipeline)
    assert set(grants) == set(used), "a role made no call at all"
    ungranted = [
        (role, action, resource)
        for role, calls in used.items()
        for action, resource in sorted(calls)
        if not any(_allows(s, action, resource) for s in grants[role])
    ]
    assert not ungranted, ungranted
    unused = [(role, s["policy"], u) for role, ss in grants.items() for s in ss for u in _unused(role, s, used[role])]
    assert not unused, "\n".join(map(str, unused))
