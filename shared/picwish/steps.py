"""What each pipeline step does — submit, create, poll, finalize, record a failure — as plain functions of an
event-free payload and injected services, so every path is testable without Lambda or Step Functions.

Step outputs stay small (ids, keys, URLs, numbers): never image bytes, far under the 256 KiB state limit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from botocore.exceptions import ClientError

from . import records
from .catalog import OPERATIONS, Operation, get_operation
from .client import PicWishClient
from .config import PipelineSettings
from .download import fetch_output
from .errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    PicWishError,
    RateLimitError,
    ResultExpiredError,
    TaskFailedError,
    UnexpectedResponseError,
    UnknownStateError,
    ValidationError,
)
from .images import EXTENSIONS, sniff_format
from .options import options_from_metadata, parse_defaults
from .ratelimit import SlotLimiter
from .results import Output
from .states import FAILED_STATES, parse_state
from .uploads import JobPath, UploadRef, parse_job_path
from .validation import validate_request

CREATE_HORIZON_S = 1.0  # a create takes only a slot this close; further ones are left to polls
MAX_QUEUE_WAIT_S = 60  # a create in the queue looks again at least this often
SLOT_LEAD_S = 0.5  # a step wakes this long before its slot, so an invocation's start-up does not miss it
READY_LEAD_S = 0.25  # the other calls' send times are read this long before the slot: the read is off the clock


class TransientApiError(Exception):
    """The API could not be reached or answered 5xx on a poll: the state machine retries with backoff."""


@dataclass
class Services:
    settings: PipelineSettings
    s3: Any
    sfn: Any = None
    dynamodb: Any = None
    api_key: Callable[[bool], str] | None = None  # refresh -> key
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    http: requests.Session = field(default_factory=requests.Session)

    def client(self, *, refresh: bool = False) -> PicWishClient:
        # Retries belong to the state machine, so the client makes exactly one call per step.
        return PicWishClient(self.api_key(refresh), settings=self.settings.client, session=self.http, max_retries=0)

    def limiter(self) -> SlotLimiter:
        return SlotLimiter(self.settings.rate_table, self.settings.qps, self.dynamodb, clock=self.clock)


# -- submit ---------------------------------------------------------------------------------------------------


def submit_event(svc: Services, event: dict) -> dict[str, int]:
    """Every record of an S3 notification, each on its own: one bad record never hides the others."""
    counts = {"started": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
    if event.get("Event") == "s3:TestEvent":
        counts["ignored"] += 1
        return counts
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            counts["ignored"] += 1
            continue
        counts[submit_upload(svc, UploadRef.from_event_record(record))] += 1
    return counts


def submit_upload(svc: Services, upload: UploadRef) -> str:
    """Validate one upload and start its execution; bad input gets its failure record before any paid call."""
    path = parse_job_path(upload.key)
    if path is None:
        return "ignored"
    if not path.known_operation:
        rule = f"must be one of {', '.join(OPERATIONS)}; got {path.operation!r}"
        _fail_input(svc, path, upload, ValidationError("operation", rule), reason="unknown operation")
        return "rejected"
    op = get_operation(path.operation)
    try:
        image, metadata = _read_object(svc, upload)
    except LookupError:
        error = PicWishError("the object was deleted before it could be read")
        _fail_input(svc, path, upload, error, reason="object missing")
        return "rejected"
    masks = {slot.name: _read_optional(svc, upload.bucket, path.mask_key(slot.name)) for slot in op.slots[1:]}
    try:
        options, ignored = options_from_metadata(op, metadata, parse_defaults(svc.settings.operation_defaults))
        if "rectangles" in options:
            masks.pop("mask", None)  # rectangles stand in for the mask
        validate_request(op, {"image": image, **{k: v for k, v in masks.items() if v is not None}}, options)
    except ValidationError as exc:
        _fail_input(svc, path, upload, exc, reason="invalid input")
        return "rejected"
    job = {
        "upload": upload.to_dict(),
        "operation": op.name,
        "options": options,
        "masks": {name: path.mask_key(name) for name, data in masks.items() if data is not None},
        "ignored_metadata": ignored,
    }
    # No timestamps in the input: the same upload must produce byte-identical input to be deduplicated.
    execution_input = json.dumps(
        {"job": job, "create": {"status": "new"}, "poll": {"state": 0, "polls": 0}, "error": None}, sort_keys=True
    )
    try:
        svc.sfn.start_execution(
            stateMachineArn=svc.settings.state_machine_arn,
            name=upload.execution_name(op.name),
            input=execution_input,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return "duplicate"
        raise
    return "started"


def _read_object(svc: Services, upload: UploadRef) -> tuple[bytes, dict[str, str]]:
    kwargs = {"Bucket": upload.bucket, "Key": upload.key}
    if upload.version_id:
        kwargs["VersionId"] = upload.version_id
    try:
        response = svc.s3.get_object(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion", "404"):
            raise LookupError(upload.key) from None
        raise
    return response["Body"].read(), dict(response.get("Metadata") or {})


def _read_optional(svc: Services, bucket: str, key: str) -> bytes | None:
    try:
        return svc.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def _fail_input(svc: Services, path: JobPath, upload: UploadRef, error: PicWishError, *, reason: str) -> None:
    record = records.failure(path, upload.to_dict(), reason=reason, error=error.to_record(), clock=svc.clock)
    records.put_json(svc.s3, svc.settings.output_bucket, path.failure_key, record)


# -- create ---------------------------------------------------------------------------------------------------


def create_step(svc: Services, payload: dict) -> dict:
    """One POST per execution, in a reserved QPS slot; a retried step reuses the task id already recorded."""
    job, previous, name = payload["job"], payload.get("create") or {}, payload["execution"]
    op = get_operation(job["operation"])
    # Checked on every attempt: a retried step gets the same input as the attempt that may have reached the API.
    recorded = _recorded_task(svc, name)
    if recorded is not None:
        return _created(svc, op, recorded["task_id"], recorded["created_at"], previous, api_calls=0)
    throttles = int(previous.get("throttles", 0))
    calls = int(previous.get("api_calls", 0))  # 429s before this attempt count too: they spent budget
    waiting = {"status": "wait", "throttles": throttles, "api_calls": calls}
    slot = _create_slot(svc, previous, name)
    if "slot_at" not in slot or slot["wait_s"] >= 1:
        return {**waiting, **slot}
    image, masks = _api_inputs(svc, job)  # before the slot: only the POST itself is on the clock
    client = svc.client(refresh=bool(previous.get("refresh_key")))
    return _call_in_slot(
        svc,
        slot["slot_at"],
        lambda: _create_call(svc, op, job, name, previous, client, image, masks, throttles, calls),
        otherwise={**waiting, "ticket": slot.get("ticket", previous.get("ticket"))},
    )


def _create_call(
    svc: Services,
    op: Operation,
    job: dict,
    name: str,
    previous: dict,
    client: PicWishClient,
    image: Any,
    masks: dict[str, Any],
    throttles: int,
    calls: int,
) -> dict:
    """The POST itself, turned into the step's output. A 401 gets one more attempt, in a slot of its own, with
    the key read again (it may have been rotated): every API call spends the budget through a slot."""
    calls += 1
    try:
        task = client.create_task(op.name, image, job["options"], **masks)
    except AuthenticationError as exc:
        if previous.get("refresh_key"):
            return _create_failed("unauthorized", exc, throttles, calls)
        later = _wait_for(svc, svc.limiter().reserve(svc.clock()))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, "refresh_key": True, **later}
    except RateLimitError as exc:
        throttles += 1
        if throttles > svc.settings.max_throttles:
            return _create_failed("rate limited", exc, throttles, calls)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, **_wait_for(svc, later)}
    except APIConnectionError as exc:
        if not exc.request_sent:
            raise TransientApiError(str(exc)) from None
        return _create_failed("ambiguous create", exc, throttles, calls)
    except (APIServerError, UnexpectedResponseError) as exc:
        # The API may have made (and billed) the task: repeating blindly could pay twice.
        return _create_failed("ambiguous create", exc, throttles, calls)
    except PicWishError as exc:
        return _create_failed("rejected by the API", exc, throttles, calls)
    created_at = svc.clock()
    _record_task(svc, name, task.task_id, created_at, op.name)
    return _created(svc, op, task.task_id, created_at, previous, api_calls=calls, throttles=throttles)


def _create_slot(svc: Services, previous: dict, execution: str) -> dict:
    """A slot for a create within the horizon, else the wait for this create's turn in the queue.

    The queue only estimates: a ticket whose execution died is never admitted, so a create that saw no
    admission at all while it waited tries for a slot anyway — the queue can slow down, never stall.
    """
    limiter = svc.limiter()
    slot_at = previous.get("slot_at")
    if slot_at is not None and not limiter.missed(float(slot_at)):
        return _wait_for(svc, float(slot_at))
    ticket = previous.get("ticket") or limiter.take_ticket(execution)  # a retry without it gets the same one
    admitted = limiter.admitted()
    queue_wait = limiter.queue_wait(ticket, admitted)
    stalled = previous.get("admitted_seen") == admitted
    if stalled or queue_wait == 0:
        reserved = limiter.reserve(svc.clock(), horizon_s=CREATE_HORIZON_S)
        if reserved is not None:
            limiter.admit()
            return {"ticket": ticket, **_wait_for(svc, reserved)}
    wait = max(1, min(MAX_QUEUE_WAIT_S, math.ceil(queue_wait)))
    return {"ticket": ticket, "admitted_seen": admitted, "wait_s": wait}


def _create_failed(reason: str, error: PicWishError, throttles: int, calls: int) -> dict:
    return {
        "status": "failed",
        "reason": reason,
        "error": error.to_record(),
        "throttles": throttles,
        "api_calls": calls,
    }


def _created(svc: Services, op: Operation, task_id: str, created_at: float, previous: dict, **counts) -> dict:
    # The first poll goes where the task is likely done: fewer polls for the same latency.
    first_poll = svc.limiter().reserve(created_at + op.typical_processing_s * svc.settings.wait_scale)
    return {
        "status": "created",
        "task_id": task_id,
        "created_at": created_at,
        "deadline_at": created_at + svc.settings.deadline_for(op.name),
        "api_calls": counts.get("api_calls", 0),
        "throttles": counts.get("throttles", int(previous.get("throttles", 0))),
        **_wait_for(svc, first_poll),
    }


def _api_inputs(svc: Services, job: dict) -> tuple[Any, dict[str, Any]]:
    """(image, mask=..., retain_mask=...) as presigned URLs (default) or bytes, per the deploy-time switch."""
    upload = job["upload"]
    refs = {"image": (upload["bucket"], upload["key"], upload.get("version_id"))}
    refs.update({slot: (upload["bucket"], key, None) for slot, key in job.get("masks", {}).items()})
    sources: dict[str, Any] = {}
    for slot, (bucket, key, version) in refs.items():
        params = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        if svc.settings.input_mode == "bytes":
            # The upload keeps the object's file name: the API (and the mock's rules) see what the user named.
            sources[slot] = (key.rsplit("/", 1)[-1], svc.s3.get_object(**params)["Body"].read())
        else:
            sources[slot] = svc.s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=svc.settings.presign_expiry_s
            )
    image = sources.pop("image")
    return image, sources


def _recorded_task(svc: Services, name: str) -> dict | None:
    item = svc.dynamodb.get_item(
        TableName=svc.settings.tasks_table, Key={"execution": {"S": name}}, ConsistentRead=True
    ).get("Item")
    if not item:
        return None
    return {"task_id": item["task_id"]["S"], "created_at": float(item["created_at"]["N"])}


def _record_task(svc: Services, name: str, task_id: str, created_at: float, operation: str) -> None:
    svc.dynamodb.put_item(
        TableName=svc.settings.tasks_table,
        Item={
            "execution": {"S": name},
            "task_id": {"S": task_id},
            "created_at": {"N": repr(created_at)},
            "operation": {"S": operation},
            "expires_at": {"N": str(int(created_at) + 90 * 24 * 3600)},
        },
    )


# -- slots ----------------------------------------------------------------------------------------------------


def _slot(svc: Services, slot_at: float | None) -> dict:
    """A usable slot: the one already reserved unless it went stale (a retried step), else a new one."""
    limiter = svc.limiter()
    if slot_at is None or limiter.missed(float(slot_at)):
        slot_at = limiter.reserve(svc.clock())
    return _wait_for(svc, float(slot_at))


def _wait_for(svc: Services, slot_at: float) -> dict:
    """Step Functions waits whole seconds, until about SLOT_LEAD_S before the slot; the step sleeps the rest."""
    return {"slot_at": slot_at, "wait_s": max(0, math.floor(slot_at - svc.clock() - SLOT_LEAD_S))}


def _call_in_slot(svc: Services, slot_at: float, call: Callable[[], dict], *, otherwise: dict) -> dict:
    """Make one API call in its slot: shortly before it, learn when the calls before it really went out and
    announce when this one will; call at the slot, or a little after when a late call before it would make this
    one the (qps + 1)-th in a second. A slot missed by more than the limiter's slip gives way to a new one
    (`otherwise` plus the wait for it)."""
    limiter = svc.limiter()
    _sleep_until(svc, slot_at - READY_LEAD_S)
    ready = limiter.ready_at(slot_at)
    if limiter.missed(slot_at, at=ready):
        return {**otherwise, **_wait_for(svc, limiter.reserve(ready))}
    # Announced before the call: an answer can take a while, and the calls after this one must not wait for it.
    limiter.mark_called(slot_at, ready)
    sent_at = _sleep_until(svc, ready)
    try:
        return call()
    finally:
        if sent_at - ready > limiter.margin_s / 2:  # it went out later than announced: say when
            limiter.mark_called(slot_at, sent_at)


def _sleep_until(svc: Services, moment: float) -> float:
    delay = moment - svc.clock()
    if delay > 0:
        svc.sleep(min(delay, SLOT_LEAD_S + 1.0))
    return svc.clock()


# -- poll -----------------------------------------------------------------------------------------------------


def poll_step(svc: Services, payload: dict) -> dict:
    """One GET in a reserved slot. Returns the task's state as sent (the state machine's Choice judges it),
    the outputs once done, and the wait before the next poll."""
    job, create, previous = payload["job"], payload["create"], payload.get("poll") or {}
    op = get_operation(job["operation"])
    base = {
        "state": previous.get("state", 0),
        "polls": int(previous.get("polls", 0)),
        "throttles": int(previous.get("throttles", create.get("throttles", 0))),
        "api_calls": int(previous.get("api_calls", create.get("api_calls", 0))),
        "timed_out": False,
    }
    if svc.clock() > float(create["deadline_at"]):
        return {**base, "timed_out": True}
    slot = _slot(svc, previous.get("slot_at", create.get("slot_at")))
    if slot["wait_s"] >= 1:
        return {**base, **slot}
    refreshed = bool(previous.get("refresh_key"))
    client = svc.client(refresh=refreshed)
    return _call_in_slot(
        svc, slot["slot_at"], lambda: _poll_call(svc, job, create, op, client, base, refreshed), otherwise=base
    )


def _poll_call(
    svc: Services, job: dict, create: dict, op: Operation, client: PicWishClient, base: dict, refreshed: bool
) -> dict:
    base["api_calls"] += 1
    base["polls"] += 1
    try:
        result = client.get_task(op.name, create["task_id"])
    except AuthenticationError as exc:
        if refreshed:
            return {**base, "state": None, "error": exc.to_record()}
        # The key may have been rotated: read it again and poll again, in a slot of its own.
        return {**base, "refresh_key": True, **_wait_for(svc, svc.limiter().reserve(svc.clock()))}
    except TaskFailedError as exc:
        return {**base, "state": exc.state, "error": exc.to_record()}
    except UnknownStateError as exc:
        return {**base, "state": None if exc.state == "<missing>" else exc.state, "error": exc.to_record()}
    except RateLimitError as exc:
        base["throttles"] += 1
        if base["throttles"] > svc.settings.max_throttles:
            return {**base, "state": None, "error": exc.to_record()}
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {**base, **_wait_for(svc, later)}
    except (APIServerError, APIConnectionError, UnexpectedResponseError) as exc:
        raise TransientApiError(str(exc)) from None
    except PicWishError as exc:
        return {**base, "state": None, "error": exc.to_record()}
    base.update(state=result.state, progress=result.progress)
    if result.is_done:
        base["outputs"] = _stash_outputs(svc, job, result.outputs())
        base["completed_at"] = result.completed_at
        base["task_created_at"] = result.created_at
        return base
    interval = op.poll_interval_s * svc.settings.wait_scale
    return {**base, **_wait_for(svc, svc.limiter().reserve(svc.clock() + interval))}


def _stash_outputs(svc: Services, job: dict, outputs: dict[str, Output]) -> dict[str, dict]:
    """URLs go on in the state; base64 results are written at their final key now, so no bytes enter the state."""
    path = parse_job_path(job["upload"]["key"])
    stashed: dict[str, dict] = {}
    for name, output in outputs.items():
        if output.url:
            stashed[name] = {"url": output.url}
        else:
            key = _output_key(path, name, output.data)
            svc.s3.put_object(Bucket=svc.settings.output_bucket, Key=key, Body=output.data)
            stashed[name] = {"key": key}
    return stashed


def _output_key(path: JobPath, name: str, data: bytes) -> str:
    ext = EXTENSIONS.get(sniff_format(data) or "", "bin")
    return f"{path.result_prefix}{name}.{ext}"


# -- finalize -------------------------------------------------------------------------------------------------


def finalize_step(svc: Services, payload: dict) -> dict:
    """Download every result at once (links die after an hour), write them and result.json under deterministic
    keys (a retried finalize rewrites the same objects), and drop an older failure record of the same path."""
    job, create, poll = payload["job"], payload["create"], payload["poll"]
    path = parse_job_path(job["upload"]["key"])
    written: dict[str, str] = {}
    for name, ref in poll.get("outputs", {}).items():
        if "key" in ref:
            written[name] = ref["key"]
            continue
        try:
            got = fetch_output(Output(url=ref["url"]), svc.settings.client, session=svc.http)
        except ResultExpiredError as exc:
            return record_failure_step(
                svc, {**payload, "failure": {"reason": "result expired", "error": exc.to_record()}}
            )
        except PicWishError as exc:
            raise TransientApiError(f"result download failed: {exc.message}") from None
        key = _output_key(path, name, got.data)
        svc.s3.put_object(Bucket=svc.settings.output_bucket, Key=key, Body=got.data, ContentType=got.content_type)
        written[name] = key
    op = get_operation(job["operation"])
    # An older failure record goes first and result.json comes last: it is the commit marker readers wait for.
    svc.s3.delete_object(Bucket=svc.settings.output_bucket, Key=path.failure_key)
    record = records.result(path, job, create, poll, written, credits=op.credits, clock=svc.clock)
    records.put_json(svc.s3, svc.settings.output_bucket, path.result_key, record)
    return {"status": "succeeded", "result_prefix": path.result_prefix, "outputs": written}


# -- failures -------------------------------------------------------------------------------------------------


def record_failure_step(svc: Services, payload: dict) -> dict:
    """The one place a failed job gets its record, whatever failed: the create, the task, the deadline, an
    undocumented state, or a step that threw (the Catch passes `error`)."""
    job = payload["job"]
    path = parse_job_path(job["upload"]["key"])
    create, poll = payload.get("create") or {}, payload.get("poll") or {}
    reason, error = _failure_reason(payload, create, poll)
    record = records.failure(
        path,
        job["upload"],
        reason=reason,
        error=error,
        clock=svc.clock,
        task_id=create.get("task_id"),
        execution=payload.get("execution"),
        api_calls=poll.get("api_calls", create.get("api_calls")),
    )
    records.put_json(svc.s3, svc.settings.output_bucket, path.failure_key, record)
    return {"status": "failed", "reason": reason, "failure_key": path.failure_key}


def _failure_reason(payload: dict, create: dict, poll: dict) -> tuple[str, dict]:
    if payload.get("failure"):
        return payload["failure"]["reason"], payload["failure"]["error"]
    if payload.get("error"):
        return "step failed", records.step_error(payload["error"])
    if create.get("status") == "failed":
        return create["reason"], create["error"]
    if poll.get("timed_out"):
        seconds = round(float(create.get("deadline_at", 0)) - float(create.get("created_at", 0)))
        return "timeout", {"message": f"the task was still processing after {seconds} s", "state": poll.get("state")}
    state = poll.get("state")
    if parse_state(state) in FAILED_STATES:
        return "task failed", poll.get("error") or TaskFailedError("", state=state).to_record()
    if poll.get("error") and poll["error"].get("error") != "UnknownStateError":
        return "api error", poll["error"]
    return "unknown state", UnknownStateError(f"undocumented task state {state!r}", state=state).to_record()


# -- backstop -------------------------------------------------------------------------------------------------


def backstop_step(svc: Services, event: dict) -> dict:
    """For executions that ended FAILED, TIMED_OUT or ABORTED — failures no Catch can see (States.Runtime,
    States.DataLimitExceeded, the machine's own timeout) — write the record unless one already exists."""
    detail = event.get("detail") or {}
    try:
        job = json.loads(detail.get("input") or "{}").get("job")
    except json.JSONDecodeError:
        job = None
    if not job:
        return {"status": "ignored"}
    path = parse_job_path(job["upload"]["key"])
    bucket = svc.settings.output_bucket
    if _exists(svc, bucket, path.result_key) or _exists(svc, bucket, path.failure_key):
        return {"status": "already recorded"}
    status = str(detail.get("status", "FAILED"))
    error = {"error": detail.get("error"), "message": detail.get("cause") or f"the execution ended {status}"}
    record = records.failure(
        path,
        job["upload"],
        reason=f"execution {status.lower()}",
        error=error,
        clock=svc.clock,
        execution=detail.get("name"),
    )
    records.put_json(svc.s3, bucket, path.failure_key, record)
    return {"status": "failed", "reason": record["reason"], "failure_key": path.failure_key}


def _exists(svc: Services, bucket: str, key: str) -> bool:
    try:
        svc.s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
