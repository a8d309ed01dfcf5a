"""The create step: one POST per execution, in a reserved QPS slot, never paid twice."""

from __future__ import annotations

from typing import Any

from picwish.catalog import MAX_URL_LENGTH, Operation, get_operation
from picwish.client import PicWishClient
from picwish.errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    PicWishError,
    RateLimitError,
    UnexpectedResponseError,
)

from . import polling, slots, storage
from .records import iso
from .services import Services, TransientApiError

CREATE_LANE_GAP = 2.1  # slots from one create's place to the next: the rest are left to polls (~1.1 per task)


def create_step(svc: Services, payload: dict) -> dict:
    """One POST per execution, in a reserved QPS slot. A claim is written before the POST; an attempt that finds
    the claim reuses the task id recorded on it, or — when there is none, so an earlier attempt may have reached
    the API and died before recording its answer — ends as "ambiguous create" instead of paying twice."""
    job, previous, name = payload["job"], payload.get("create") or {}, payload["execution"]
    op = get_operation(job["operation"])
    # Checked on every attempt: a retried step gets the same input as the attempt that may have reached the API.
    claim = storage.read_claim(svc, name)
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
        if storage.claim(svc, name, op.name):
            return None
        return _from_claim(svc, op, storage.read_claim(svc, name) or {}, previous)  # another attempt holds it

    return slots.call_in_slot(
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
        storage.release_claim(svc, name)
        if previous.get("refresh_key"):
            return _create_failed("unauthorized", exc, throttles, calls)
        later = slots.wait_for(svc, svc.limiter().reserve(svc.clock()))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, "refresh_key": True, **later}
    except RateLimitError as exc:
        storage.release_claim(svc, name)
        throttles += 1
        if throttles > svc.settings.max_throttles:
            return _create_failed("rate limited", exc, throttles, calls)
        later = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return {"status": "wait", "throttles": throttles, "api_calls": calls, **slots.wait_for(svc, later)}
    except APIConnectionError as exc:
        if not exc.request_sent:
            storage.release_claim(svc, name)
            raise TransientApiError(str(exc)) from None
        return _create_failed("ambiguous create", exc, throttles, calls)
    except (APIServerError, UnexpectedResponseError) as exc:
        # The API may have made (and billed) the task: repeating blindly could pay twice. The claim stays.
        return _create_failed("ambiguous create", exc, throttles, calls)
    except PicWishError as exc:
        storage.release_claim(svc, name)
        return _create_failed("rejected by the API", exc, throttles, calls)
    created_at = svc.clock()
    storage.record_task(svc, name, task.task_id, created_at)
    return _created(svc, op, task.task_id, created_at, previous, api_calls=calls, throttles=throttles)


def _create_slot(svc: Services, previous: dict) -> dict:
    """The slot this create waits for: the one it already holds, a slot right away when it woke too late for
    that one (it has waited its turn), else a place in the create lane."""
    limiter = svc.limiter()
    slot_at = previous.get("slot_at")
    if slot_at is None:
        return slots.wait_for(svc, limiter.reserve_create(CREATE_LANE_GAP))
    if limiter.missed(float(slot_at)):
        return slots.wait_for(svc, limiter.reserve(svc.clock()))
    return slots.wait_for(svc, float(slot_at))


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
    durations = slots.durations(svc, schedule, op)
    first_poll = limiter.reserve(polling.first_poll_at(created_at, durations, busy=schedule.busy(svc.clock())))
    return {
        "status": "created",
        "task_id": task_id,
        "created_at": created_at,
        "deadline_at": created_at + svc.settings.deadline_for(op.name),
        "api_calls": counts.get("api_calls", 0),
        "throttles": counts.get("throttles", int(previous.get("throttles", 0))),
        **slots.wait_for(svc, first_poll),
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
