"""What each pipeline step does — submit, create, poll, finalize, record a failure — as plain functions of an
event-free payload and injected services, so every path is testable without Lambda or Step Functions.

Step outputs stay small (ids, keys, URLs, numbers): never image bytes, far under the 256 KiB state limit.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from botocore.exceptions import ClientError

from . import polling, records
from .catalog import MAX_URL_LENGTH, OPERATIONS, Operation, get_operation
from .client import PicWishClient
from .config import PipelineSettings
from .download import fetch_output
from .errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    IncompleteResultError,
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
from .ratelimit import Schedule, SlotLimiter
from .records import iso
from .results import Output
from .retry import Backoff
from .states import FAILED_STATES, parse_state
from .uploads import JobPath, UploadRef, parse_job_path
from .validation import check_image_size, validate_request

logger = logging.getLogger(__name__)

IDLE_POLL_GAP = 0.5  # of the operation's poll interval: an idle budget can afford polls that close together
IDLE_MAX_POLL_GAP = 2.0  # ... and need not leave a running task alone longer than the docs' "every 1-2 s"
CREATE_LANE_GAP = 2.1  # slots from one create's place to the next: the rest are left to polls (~1.1 per task)
SLOT_LEAD_S = 0.5  # a step wakes this long before its slot, so an invocation's start-up does not miss it
READY_LEAD_S = 0.25  # the other calls' send times are read this long before the slot: the read is off the clock
POLL_ERROR_CAP_S = 30.0  # the longest wait between polls that keep failing (scaled by WaitScale)
NOT_FOUND = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})  # S3 GET and HEAD say it differently


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
    jitter: Callable[[], float] = random.random  # the randomness of backoffs, fixed by tests
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


class MissingUpload(LookupError):
    """The object (or the version the event names) is gone: deleted before it could be read."""


def submit_upload(svc: Services, upload: UploadRef) -> str:
    """Validate one upload and start its execution. Whatever goes wrong while judging or starting it ends in a
    failure record before anything is paid: "invalid input" when the upload is at fault, "internal error" (and
    the exception goes on to Lambda's retries and the dead-letter queue) when it is not."""
    path = parse_job_path(upload.key)
    if path is None:
        return "ignored"
    try:
        job = _judge_upload(svc, path, upload)
    except ValidationError as exc:
        reason = "unknown operation" if exc.param == "operation" else "invalid input"
        _fail_input(svc, path, upload, exc, reason=reason)
        return "rejected"
    except MissingUpload:
        error = PicWishError("the object was deleted before it could be read")
        _fail_input(svc, path, upload, error, reason="object missing")
        return "rejected"
    except Exception as exc:
        _fail_internally(svc, path, upload, "the upload could not be judged", exc)
        raise
    # No timestamps in the input: the same upload must produce byte-identical input to be deduplicated.
    execution_input = json.dumps(
        {"job": job, "create": {"status": "new"}, "poll": {"state": 0, "polls": 0}, "error": None}, sort_keys=True
    )
    try:
        svc.sfn.start_execution(
            stateMachineArn=svc.settings.state_machine_arn,
            name=upload.execution_name(job["operation"]),
            input=execution_input,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return "duplicate"
        _fail_internally(svc, path, upload, "the job could not be started", exc)
        raise
    except Exception as exc:
        _fail_internally(svc, path, upload, "the job could not be started", exc)
        raise
    return "started"


def _fail_internally(svc: Services, path: JobPath, upload: UploadRef, what: str, exc: Exception) -> None:
    """An "internal error" record before the exception goes on to Lambda's retries and the dead-letter queue; a
    retry that gets through replaces it with the job's own record."""
    # The type only: a message could carry anything (a URL, a header) into a record users read.
    error = PicWishError(f"{what} ({type(exc).__name__}); it will be tried again")
    _fail_input(svc, path, upload, error, reason="internal error")


def _judge_upload(svc: Services, path: JobPath, upload: UploadRef) -> dict:
    """The job an upload asks for, or the ValidationError / MissingUpload that refuses it."""
    if not path.known_operation:
        raise ValidationError("operation", f"must be one of {', '.join(OPERATIONS)}; got {path.operation!r}")
    op = get_operation(path.operation)
    read = _read_capped(svc, op, op.slots[0].file_field, upload.bucket, upload.key, upload.version_id)
    if read is None:
        raise MissingUpload(upload.key)
    image, metadata = read
    masks: dict[str, bytes] = {}
    for slot in op.slots[1:]:
        key = path.mask_key(slot.name)
        found = None if key is None else _read_capped(svc, op, slot.file_field, upload.bucket, key)
        if found is not None:
            masks[slot.name] = found[0]
    options, ignored = options_from_metadata(op, metadata, parse_defaults(svc.settings.operation_defaults))
    if "rectangles" in options:
        masks.pop("mask", None)  # rectangles stand in for the mask
    validate_request(op, {"image": image, **masks}, options)
    return {
        "upload": upload.to_dict(),
        "operation": op.name,
        "options": options,
        "masks": {name: path.mask_key(name) for name in masks},
        "ignored_metadata": ignored,
    }


def _read_capped(
    svc: Services, op: Operation, field_name: str, bucket: str, key: str, version_id: str | None = None
) -> tuple[bytes, dict[str, str]] | None:
    """(bytes, user metadata) of an object, None when it does not exist. Its size is judged by a HEAD before a
    byte is read, and the read stops one byte past the limit: the object may be replaced in between."""
    params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        head = svc.s3.head_object(**params)
        check_image_size(op, field_name, int(head.get("ContentLength", 0)))
        body = svc.s3.get_object(**params)["Body"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return None
        raise
    try:
        data = body.read(op.max_bytes + 1)
    finally:
        body.close()
    check_image_size(op, field_name, len(data))
    return data, dict(head.get("Metadata") or {})


def _fail_input(svc: Services, path: JobPath, upload: UploadRef, error: PicWishError, *, reason: str) -> None:
    record = records.failure(path, upload.to_dict(), reason=reason, error=error.to_record(), clock=svc.clock)
    records.put_json(svc.s3, svc.settings.output_bucket, path.failure_key, record)


# -- create ---------------------------------------------------------------------------------------------------


def create_step(svc: Services, payload: dict) -> dict:
    """One POST per execution, in a reserved QPS slot. A claim is written before the POST; an attempt that finds
    the claim reuses the task id recorded on it, or — when there is none, so an earlier attempt may have reached
    the API and died before recording its answer — ends as "ambiguous create" instead of paying twice."""
    job, previous, name = payload["job"], payload.get("create") or {}, payload["execution"]
    op = get_operation(job["operation"])
    # Checked on every attempt: a retried step gets the same input as the attempt that may have reached the API.
    claim = _read_claim(svc, name)
    if claim is not None:
        return _from_claim(svc, op, claim, previous)
    throttles = int(previous.get("throttles", 0))
    calls = int(previous.get("api_calls", 0))  # 429s before this attempt count too: they spent budget
    waiting = {"status": "wait", "throttles": throttles, "api_calls": calls}
    slot = _create_slot(svc, previous)
    if slot["wait_s"] >= 1:
        return {**waiting, **slot}
    image, masks = _api_inputs(svc, job)  # before the slot: only the POST itself is on the clock
    client = svc.client(refresh=bool(previous.get("refresh_key")))

    def claim() -> dict | None:
        if _claim(svc, name, op.name):
            return None
        return _from_claim(svc, op, _read_claim(svc, name) or {}, previous)  # another attempt holds it

    return _call_in_slot(
        svc,
        slot["slot_at"],
        lambda: _create_call(svc, op, job, name, previous, client, image, masks, throttles, calls),
        otherwise=waiting,
        prepare=claim,
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
    """The POST (its claim already written) and its answer turned into the step's output. A 401 gets one more
    attempt, in a slot of its own, with the key read again (it may have been rotated): every API call spends the
    budget through a slot. Answers that prove no task was made release the claim, so the next attempt may POST."""
    calls += 1
    try:
        task = client.create_task(op.name, image, job["options"], **masks)
    except AuthenticationError as exc:
        _release_claim(svc, name)
        if previous.get("refresh_key"):
            return _create_failed("unauthorized", exc, throttles, calls)
        later = _wait_for(svc, svc.limiter().reserve(svc.clock()))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, "refresh_key": True, **later}
    except RateLimitError as exc:
        _release_claim(svc, name)
        throttles += 1
        if throttles > svc.settings.max_throttles:
            return _create_failed("rate limited", exc, throttles, calls)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, **_wait_for(svc, later)}
    except APIConnectionError as exc:
        if not exc.request_sent:
            _release_claim(svc, name)
            raise TransientApiError(str(exc)) from None
        return _create_failed("ambiguous create", exc, throttles, calls)
    except (APIServerError, UnexpectedResponseError) as exc:
        # The API may have made (and billed) the task: repeating blindly could pay twice. The claim stays.
        return _create_failed("ambiguous create", exc, throttles, calls)
    except PicWishError as exc:
        _release_claim(svc, name)
        return _create_failed("rejected by the API", exc, throttles, calls)
    created_at = svc.clock()
    _record_task(svc, name, task.task_id, created_at)
    return _created(svc, op, task.task_id, created_at, previous, api_calls=calls, throttles=throttles)


def _create_slot(svc: Services, previous: dict) -> dict:
    """The slot this create waits for: the one it already holds, a slot right away when it woke too late for
    that one (it has waited its turn), else a place in the create lane."""
    limiter = svc.limiter()
    slot_at = previous.get("slot_at")
    if slot_at is None:
        return _wait_for(svc, limiter.reserve_create(CREATE_LANE_GAP))
    if limiter.missed(float(slot_at)):
        return _wait_for(svc, limiter.reserve(svc.clock()))
    return _wait_for(svc, float(slot_at))


def _create_failed(reason: str, error: PicWishError | dict, throttles: int, calls: int) -> dict:
    return {
        "status": "failed",
        "reason": reason,
        "error": error if isinstance(error, dict) else error.to_record(),
        "throttles": throttles,
        "api_calls": calls,
    }


def _created(svc: Services, op: Operation, task_id: str, created_at: float, previous: dict, **counts) -> dict:
    limiter = svc.limiter()
    schedule = limiter.schedule()
    durations = _durations(svc, schedule, op)
    first_poll = limiter.reserve(polling.first_poll_at(created_at, durations, busy=schedule.busy(svc.clock())))
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
    """(image, mask=..., retain_mask=...) as presigned URLs (default) or bytes, per the deploy-time switch. A URL
    longer than the API accepts (a long key signs long) is sent as bytes instead."""
    upload = job["upload"]
    refs = {"image": (upload["bucket"], upload["key"], upload.get("version_id"))}
    refs.update({slot: (upload["bucket"], key, None) for slot, key in job.get("masks", {}).items()})
    sources: dict[str, Any] = {}
    for slot, (bucket, key, version) in refs.items():
        params = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        if svc.settings.input_mode != "bytes":
            url = svc.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=svc.settings.presign_expiry_s)
            if len(url) <= MAX_URL_LENGTH:
                sources[slot] = url
                continue
        # The upload keeps the object's file name: the API (and the mock's rules) see what the user named.
        sources[slot] = (key.rsplit("/", 1)[-1], svc.s3.get_object(**params)["Body"].read())
    image = sources.pop("image")
    return image, sources


# -- the task record: a claim before the POST, the task id after it ---------------------------------------------


def _claim(svc: Services, name: str, operation: str) -> bool:
    """Write this execution's claim to create its task; False when a claim already exists."""
    now = svc.clock()
    try:
        svc.dynamodb.put_item(
            TableName=svc.settings.tasks_table,
            Item={
                "execution": {"S": name},
                "claimed_at": {"N": repr(now)},
                "operation": {"S": operation},
                "expires_at": {"N": str(int(now) + 90 * 24 * 3600)},
            },
            ConditionExpression="attribute_not_exists(execution)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _read_claim(svc: Services, name: str) -> dict | None:
    item = svc.dynamodb.get_item(
        TableName=svc.settings.tasks_table, Key={"execution": {"S": name}}, ConsistentRead=True
    ).get("Item")
    if not item:
        return None
    return {
        "task_id": item["task_id"]["S"] if "task_id" in item else None,
        "created_at": float(item["created_at"]["N"]) if "created_at" in item else None,
        "claimed_at": float(item["claimed_at"]["N"]) if "claimed_at" in item else None,
    }


def _from_claim(svc: Services, op: Operation, claim: dict, previous: dict) -> dict:
    if claim.get("task_id"):
        return _created(svc, op, claim["task_id"], claim["created_at"], previous, api_calls=0)
    claimed = iso(claim.get("claimed_at"))
    error = PicWishError(
        f"an earlier attempt claimed this create at {claimed} and may have reached the API, but its answer was "
        "never recorded; it is not repeated, so the upload is not paid twice (re-upload it to try again)"
    ).to_record()
    error["claimed_at"] = claimed
    return _create_failed(
        "ambiguous create", error, int(previous.get("throttles", 0)), int(previous.get("api_calls", 0))
    )


def _release_claim(svc: Services, name: str) -> None:
    """The API answered that it made no task: the claim goes, so the next attempt may POST. Failing to release
    only makes that attempt end as "ambiguous create" — never a second payment — so a failure here is logged."""
    try:
        svc.dynamodb.delete_item(
            TableName=svc.settings.tasks_table,
            Key={"execution": {"S": name}},
            ConditionExpression="attribute_not_exists(task_id)",
        )
    except ClientError as exc:
        logger.warning("claim not released", extra={"execution": name, "error": exc.response["Error"]["Code"]})


def _record_task(svc: Services, name: str, task_id: str, created_at: float) -> None:
    """The task id on the claim. The step's output carries it on even if this write fails: only an attempt
    that dies before returning leaves the claim without it."""
    try:
        svc.dynamodb.update_item(
            TableName=svc.settings.tasks_table,
            Key={"execution": {"S": name}},
            UpdateExpression="SET task_id = :t, created_at = :c",
            ExpressionAttributeValues={":t": {"S": task_id}, ":c": {"N": repr(created_at)}},
        )
    except ClientError as exc:
        logger.warning("task id not recorded", extra={"execution": name, "error": exc.response["Error"]["Code"]})


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


def _call_in_slot(
    svc: Services,
    slot_at: float,
    call: Callable[[], dict],
    *,
    otherwise: dict,
    prepare: Callable[[], dict | None] | None = None,
) -> dict:
    """Make one API call in its slot: shortly before it, learn when the calls before it really went out and
    announce when this one will; call at the slot, or a little after when a late call before it would make this
    one the (qps + 1)-th in a second. A slot missed by more than the limiter's slip gives way to a new one
    (`otherwise` plus the wait for it). `prepare` runs once the slot is sure, in the time left before it (off
    the clock); an answer from it is the step's output and no call is made."""
    limiter = svc.limiter()
    _sleep_until(svc, slot_at - READY_LEAD_S)
    ready = limiter.ready_at(slot_at)
    if limiter.missed(slot_at, at=ready):
        return {**otherwise, **_wait_for(svc, limiter.reserve(ready))}
    # Announced before the call: an answer can take a while, and the calls after this one must not wait for it.
    limiter.mark_called(slot_at, ready)
    early = prepare() if prepare is not None else None
    if early is not None:
        return early
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
    """One GET in a reserved slot. Returns the job's phase — `done` (state exactly 1 with the operation's
    outputs), `processing` (with the wait before the next poll), `failed` (with the reason) or `timeout` — so
    the state machine's Choice judges one field the step has already judged."""
    job, create, previous = payload["job"], payload["create"], payload.get("poll") or {}
    op = get_operation(job["operation"])
    base = {
        "phase": "processing",
        "state": previous.get("state", 0),
        "polls": int(previous.get("polls", 0)),
        "throttles": int(previous.get("throttles", create.get("throttles", 0))),
        "api_calls": int(previous.get("api_calls", create.get("api_calls", 0))),
        "errors": int(previous.get("errors", 0)),
        **({"last_error": previous["last_error"]} if previous.get("last_error") else {}),
        **({"polled_at": previous["polled_at"]} if previous.get("polled_at") else {}),
        **({"progress": previous["progress"]} if previous.get("progress") is not None else {}),
    }
    if svc.clock() > float(create["deadline_at"]):
        return {**base, "phase": "timeout"}
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
    polled = {**base, "api_calls": base["api_calls"] + 1, "polls": base["polls"] + 1}
    try:
        result = client.get_task(op.name, create["task_id"])
    except AuthenticationError as exc:
        if refreshed:
            return _poll_failed(polled, "unauthorized", exc)
        # The key may have been rotated: read it again and poll again, in a slot of its own.
        return {**polled, "refresh_key": True, **_wait_for(svc, svc.limiter().reserve(svc.clock()))}
    except TaskFailedError as exc:
        return _poll_failed({**polled, "state": exc.state}, "task failed", exc)
    except UnknownStateError as exc:
        return _poll_failed({**polled, "state": None if exc.state == "<missing>" else exc.state}, "unknown state", exc)
    except IncompleteResultError as exc:
        return _poll_failed({**polled, "state": 1}, "unexpected response", exc)
    except RateLimitError as exc:
        polled["throttles"] += 1
        if polled["throttles"] > svc.settings.max_throttles:
            return _poll_failed(polled, "rate limited", exc)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {**polled, **_wait_for(svc, later)}
    except (APIServerError, APIConnectionError, UnexpectedResponseError) as exc:
        # The task exists and is paid for: a failing poll is waited out (backing off) until the job's deadline.
        errors = polled["errors"] + 1
        backoff = Backoff(op.poll_interval_s, POLL_ERROR_CAP_S, svc.jitter).delay(errors - 1)
        later = svc.limiter().reserve(svc.clock() + backoff * svc.settings.wait_scale)
        return {**polled, "errors": errors, "last_error": exc.to_record(), **_wait_for(svc, later)}
    except PicWishError as exc:
        return _poll_failed(polled, "api error", exc)
    now = svc.clock()
    polled.update(state=result.state, progress=result.progress, errors=0, polled_at=now)
    polled.pop("last_error", None)
    limiter = svc.limiter()
    schedule = limiter.schedule()
    durations = _durations(svc, schedule, op)
    created_at = float(create["created_at"])
    if result.is_done:
        missing = [f"data.{name}" for name in op.results_for(job["options"]) if not result.carries(name)]
        if missing:
            asked = f"without {' and '.join(missing)}, which its options ask for"
            error = IncompleteResultError(f"the task reported done {asked}", task_id=result.task_id)
            return _poll_failed(polled, "unexpected response", error)
        seconds = polling.completion_sample(
            created_at, base.get("polled_at"), now, result.created_at, result.completed_at
        )
        try:
            limiter.learn(op.name, durations.learn(seconds))
        except ClientError as exc:  # a lost sample only slows the learning; the task is done and paid for
            logger.warning("durations not learned", extra={"error": exc.response["Error"]["Code"]})
        return {
            **polled,
            "phase": "done",
            "outputs": _stash_outputs(svc, job, result.outputs()),
            "completed_at": result.completed_at,
            "task_created_at": result.created_at,
        }
    busy = schedule.busy(now)
    interval = op.poll_interval_s * svc.settings.wait_scale
    at = polling.next_poll_at(
        created_at,
        now,
        result.progress,
        durations,
        busy=busy,
        min_gap_s=interval * (1.0 if busy else IDLE_POLL_GAP),
        max_gap_s=interval * IDLE_MAX_POLL_GAP,
        earlier=_reading(created_at, base),
        deadline=float(create["deadline_at"]),
    )
    return {**polled, **_wait_for(svc, limiter.reserve(at))}


def _durations(svc: Services, schedule: Schedule, op: Operation) -> polling.Durations:
    """What the operation's tasks have been taking; before any completed, the catalog's guess (scaled)."""
    return schedule.durations_of(op.name, op.typical_processing_s * svc.settings.wait_scale)


def _reading(created_at: float, previous: dict) -> tuple[float, int] | None:
    """The (elapsed, progress) the poll before this one saw, when it saw progress."""
    if previous.get("polled_at") is None or not previous.get("progress"):
        return None
    return float(previous["polled_at"]) - created_at, int(previous["progress"])


def _poll_failed(polled: dict, reason: str, error: PicWishError) -> dict:
    return {**polled, "phase": "failed", "failure": {"reason": reason, "error": error.to_record()}}


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
    return path.output_key(name, EXTENSIONS.get(sniff_format(data) or "", "bin"))


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
            got = fetch_output(Output(url=ref["url"]), svc.settings.client)
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
    if poll.get("phase") == "timeout":
        seconds = round(float(create.get("deadline_at", 0)) - float(create.get("created_at", 0)))
        message = f"the task was still processing after {seconds} s"
        last = poll.get("last_error")
        if last:  # the deadline came while polls were failing: say how
            message = f"no answer about the task for {poll.get('errors')} polls before the {seconds} s deadline"
            return "timeout", {**last, "message": f"{message}; the last: {last.get('message')}"}
        return "timeout", {"message": message, "state": poll.get("state")}
    if poll.get("failure"):
        return poll["failure"]["reason"], poll["failure"]["error"]
    state = poll.get("state")
    if parse_state(state) in FAILED_STATES:
        return "task failed", TaskFailedError("", state=state).to_record()
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
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return False
        raise
