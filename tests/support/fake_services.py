"""In-memory stand-ins for what a step is given — S3, the task table, Step Functions, the QPS slots, the API
client — so every branch of every step runs in the unit tier, without moto or sockets, and each fake records
what was asked of it."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from picwish_pipeline.config import PipelineSettings
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.scheduler.belief import Durations
from picwish_pipeline.scheduler.plan import Schedule, spares
from picwish_pipeline.services import Services
from picwish_visual.errors import error_for
from picwish_visual.results import TaskResult

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = 1_795_000_000.0
OUTPUT_BUCKET = "picwish-output-123456789012-us-east-1"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def step_input(name: str, **parts: Any) -> StepInput:
    """A step's input from an events/ file, with `parts` (create=..., poll=...) replaced."""
    return StepInput.from_dict({**event(name), **parts})


def client_error(code: str, operation: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


@dataclass
class FakeS3:
    """A versioned bucket: each put makes a new current version; a read may name an older one."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # the current versions
    versions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (operation, bucket, key), in order

    def put(
        self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None, version_id: str | None = None
    ) -> str:
        version = version_id or f"v{len(self.versions) + 1}"
        stored = {"Body": body, "Metadata": metadata or {}, "VersionId": version, "ETag": f'"etag-{version}"'}
        self.objects[(bucket, key)] = self.versions[(bucket, key, version)] = stored
        return version

    def json(self, bucket: str, key: str) -> dict:
        return json.loads(self.objects[(bucket, key)]["Body"])

    def _get(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        found = self.objects.get((Bucket, Key)) if VersionId is None else self.versions.get((Bucket, Key, VersionId))
        if found is None:
            raise client_error("NoSuchKey" if VersionId is None else "NoSuchVersion", "GetObject")
        return found

    def head_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        self.log.append(("head_object", Bucket, Key))
        try:
            found = self._get(Bucket, Key, VersionId)
        except ClientError:
            raise client_error("404", "HeadObject") from None
        return {
            "ContentLength": len(found["Body"]),
            "Metadata": found["Metadata"],
            "VersionId": found["VersionId"],
            "ETag": found["ETag"],
        }

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        self.log.append(("get_object", Bucket, Key))
        return {"Body": io.BytesIO(self._get(Bucket, Key, VersionId)["Body"])}

    def in_bucket(self, bucket: str) -> dict[str, bytes]:
        """Key → bytes of the current objects of one bucket."""
        return {k: o["Body"] for (b, k), o in self.objects.items() if b == bucket}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **kw: Any) -> dict[str, Any]:
        self.log.append(("put_object", Bucket, Key))
        version = self.put(Bucket, Key, Body, kw.get("Metadata"))
        self.objects[(Bucket, Key)].update(kw)
        return {"VersionId": version}

    def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.log.append(("delete_object", Bucket, Key))
        self.objects.pop((Bucket, Key), None)
        return {}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str, Delimiter: str | None = None) -> list[dict[str, Any]]:
        """list_objects_v2 as one page; with a Delimiter, only the keys directly under the prefix."""
        self.log.append(("list_objects_v2", Bucket, Prefix))
        keys = sorted(k for b, k in self.objects if b == Bucket and k.startswith(Prefix))
        if Delimiter:
            keys = [k for k in keys if Delimiter not in k[len(Prefix) :]]
        return [{"Contents": [{"Key": k} for k in keys]}]

    def generate_presigned_url(self, method: str, Params: dict, ExpiresIn: int) -> str:
        version = f"&versionId={Params['VersionId']}" if "VersionId" in Params else ""
        return f"https://{Params['Bucket']}.s3.test/{Params['Key']}?X-Amz-Expires={ExpiresIn}{version}"


@dataclass
class FakeTaskTable:
    """The task table: conditional writes as DynamoDB judges them for the two conditions the steps use."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    tally: dict[str, dict[str, int]] = field(default_factory=dict)  # picwish_pipeline.tally's items
    hidden_reads: int = 0  # reads that miss an item written meanwhile by another attempt

    def put_item(
        self, TableName: str, Item: dict, ConditionExpression: str, ExpressionAttributeValues: dict | None = None
    ) -> dict:
        name = Item["execution"]["S"]
        if name.startswith("record#"):  # a key's record lock
            assert ConditionExpression == ("attribute_not_exists(execution) OR held_until < :now OR lock_owner = :me")
            held = self.items.get(name)
            values = ExpressionAttributeValues or {}
            live = held and float(held["held_until"]["N"]) >= float(values[":now"]["N"])
            if live and held["lock_owner"] != values[":me"]:
                raise client_error("ConditionalCheckFailedException", "PutItem")
            self.items[name] = dict(Item)
            return {}
        assert ConditionExpression == "attribute_not_exists(execution)"
        if name in self.items:
            raise client_error("ConditionalCheckFailedException", "PutItem")
        self.items[name] = dict(Item)
        return {}

    def batch_get_item(self, RequestItems: dict) -> dict:
        """The tally's items, as picwish_pipeline.tally.read asks for them."""
        ((table, ask),) = RequestItems.items()
        names = [key["execution"]["S"] for key in ask["Keys"]]
        found = [
            {"execution": {"S": n}, **{k: {"N": str(v)} for k, v in self.tally[n].items()}}
            for n in names
            if n in self.tally
        ]
        return {"Responses": {table: found}}

    def get_item(self, TableName: str, Key: dict, ConsistentRead: bool) -> dict:
        assert ConsistentRead, "a claim is read consistently: an attempt must see the one before it"
        found = self.items.get(Key["execution"]["S"])
        if self.hidden_reads > 0:
            self.hidden_reads -= 1
            return {}
        return {"Item": dict(found)} if found else {}

    def update_item(
        self,
        TableName: str,
        Key: dict,
        UpdateExpression: str,
        ExpressionAttributeValues: dict,
        ExpressionAttributeNames: dict | None = None,
    ) -> dict:
        if ExpressionAttributeNames:  # the tally's ADD counts: kept apart, by item, as plain numbers
            counts = self.tally.setdefault(Key["execution"]["S"], {})
            for name, value in re.findall(r"(#n\d+) (:v\d+)", UpdateExpression):
                counted = ExpressionAttributeNames[name]
                counts[counted] = counts.get(counted, 0) + int(ExpressionAttributeValues[value]["N"])
            return {}
        item = self.items.setdefault(Key["execution"]["S"], {"execution": Key["execution"]})
        item.update(task_id=ExpressionAttributeValues[":t"], created_at=ExpressionAttributeValues[":c"])
        return {}

    def delete_item(
        self, TableName: str, Key: dict, ConditionExpression: str, ExpressionAttributeValues: dict | None = None
    ) -> dict:
        name = Key["execution"]["S"]
        if name.startswith("record#"):
            assert ConditionExpression == "lock_owner = :me"
            if self.items.get(name, {}).get("lock_owner") != (ExpressionAttributeValues or {})[":me"]:
                raise client_error("ConditionalCheckFailedException", "DeleteItem")
            self.items.pop(name)
            return {}
        assert ConditionExpression == "attribute_not_exists(task_id)"
        if "task_id" in self.items.get(name, {}):
            raise client_error("ConditionalCheckFailedException", "DeleteItem")
        self.items.pop(name, None)
        return {}


@dataclass
class FakeSfn:
    started: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def start_execution(self, **kw: Any) -> dict:
        if self.fail_with is not None:
            raise self.fail_with
        self.started.append(kw)
        return {"executionArn": f"arn:aws:states:::execution:picwish:{kw['name']}"}


@dataclass
class FakeLimiter:
    """Slots on demand: a reservation gets the moment asked for (or now), plus `queued_s` for the create lane."""

    clock: Any
    queued_s: float = 0.0
    busy: bool = False
    backlog_s: float = 60.0  # when busy, the create lane's last create is this far ahead
    margin_s: float = 0.05
    max_slip_s: float = 2.0
    reserved: list[float] = field(default_factory=list)
    within: list[bool] = field(default_factory=list)  # whether each reservation may go inside its slot
    spare: list[bool] = field(default_factory=list)  # whether each reservation may be taken by a call that cannot wait
    displaced: bool = False  # a spare call's slot has been taken when it announces itself
    called: list[tuple[float, float]] = field(default_factory=list)
    learned: list[tuple[str, Durations]] = field(default_factory=list)
    learn_fails: bool = False

    def reserve(
        self, not_before: float | None = None, *, within: bool = False, spare_until: float | None = None
    ) -> float:
        at = max(self.clock(), not_before or 0.0)
        self.reserved.append(at)
        self.within.append(within)
        self.spare.append(spares(at, spare_until))
        return at

    lanes: list[tuple[bool, float]] = field(default_factory=list)  # each create's (backfill?, live share)

    def reserve_create(self, gap_slots: float, *, backfill: bool = False, live_share: float = 1.0) -> float:
        self.lanes.append((backfill, live_share))
        return self.reserve(self.clock() + self.queued_s)

    def missed(self, slot_at: float, at: float | None = None) -> bool:
        return (self.clock() if at is None else at) > slot_at + self.max_slip_s

    def ready_at(self, slot_at: float) -> float:
        return slot_at

    def mark_called(self, slot_at: float, sent_at: float, *, spare: bool = False) -> bool:
        if spare and self.displaced:
            return False
        self.called.append((slot_at, sent_at))
        return True

    def schedule(self) -> Schedule:
        lane = self.clock() + self.backlog_s if self.busy else None
        return Schedule(lane, {})

    def learn(self, operation: str, durations: Durations) -> None:
        if self.learn_fails:
            raise client_error("ProvisionedThroughputExceededException", "UpdateItem")
        self.learned.append((operation, durations))


@dataclass
class Created:
    task_id: str


@dataclass
class FakeClient:
    """Answers in order: a dict is the `data` of an answer (parsed as the real client parses it), an exception is
    raised. Every call is recorded with its arguments."""

    answers: list[Any] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)

    def _next(self) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def create_task(self, operation: str, image: Any, options: dict, **masks: Any) -> Created:
        self.calls.append(("create", operation, image, options, masks))
        return Created(self._next())

    def get_task(self, operation: str, task_id: str) -> TaskResult:
        self.calls.append(("get", operation, task_id))
        data = {"task_id": task_id, **self._next()}
        result = TaskResult.from_data(operation, data, task_id=task_id)
        # As the client judges the state: a failed or undocumented one is an exception.
        error = error_for(state=data.get("state", "<missing>"), task_id=task_id, operation=operation)
        if error is not None:
            raise error
        return result


@dataclass
class Fakes:
    now: float = NOW
    s3: FakeS3 = field(default_factory=FakeS3)
    tasks: FakeTaskTable = field(default_factory=FakeTaskTable)
    sfn: FakeSfn = field(default_factory=FakeSfn)
    api: FakeClient = field(default_factory=FakeClient)
    keys_read: list[bool] = field(default_factory=list)  # refresh flags of each API key read
    limiter: FakeLimiter = field(init=False)
    svc: Services = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = FakeLimiter(self.clock)
        fakes = self
        settings = PipelineSettings(
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:picwish",
            output_bucket=OUTPUT_BUCKET,
            tasks_table="tasks",
            rate_table="slots",
            max_throttles=3,
        )

        class FakeServices(Services):
            def client(self, *, refresh: bool = False) -> Any:
                fakes.keys_read.append(refresh)
                return fakes.api

            def limiter(self) -> Any:
                return fakes.limiter

        self.svc = FakeServices(
            settings=settings,
            s3=self.s3,
            sfn=self.sfn,
            dynamodb=self.tasks,
            api_key=lambda refresh: "test-key",
            clock=self.clock,
            sleep=self.sleep,
            jitter=lambda: 0.5,
        )

        # The uploads the events/ state files name, each as its key's current version.
        for path in sorted(EVENTS.glob("state-*.json")):
            upload = json.loads(path.read_text())["job"]["upload"]
            self.s3.put(upload["bucket"], upload["key"], b"uploaded bytes", version_id=upload["version_id"])

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
