"""The create step: one POST per execution, in a reserved QPS slot, never paid twice."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from picwish_visual.catalog import MAX_URL_LENGTH, Operation
from picwish_visual.client import PicWishClient
from picwish_visual.errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    PicWishError,
    RateLimitError,
    UnexpectedResponseError,
)

from . import budget, handover, keyrecord, storage, tally
from .payloads import BACKFILL, CreateState, Job, StepInput, Waiting
from .reasons import Reason
from .records import iso
from .scheduler import calling, plan
from .services import Services, TransientApiError
from .storage import Claim

CREATE_LANE_GAP = 2.1  # slots from one create's place to the next: the rest are left to polls (~1.1 per task)


def create_step(svc: Services, payload: StepInput) -> CreateState:
    """One POST per execution, in a reserved QPS slot. A claim is written before the POST; an attempt that finds
    the claim reuses the task id recorded on it, or — when there is none, so an earlier attempt may have reached
    the API and died before recording its answer — ends as "ambiguous create" instead of paying twice."""
    job, previous, name = payload.job, payload.create, str(payload.execution)
    settled = _settled(svc, payload)
    if settled is not None:
        return settled
    # 429s before this attempt count too: they spent budget.
    waiting = CreateState(
        status="wait",
        throttles=previous.throttles,
        api_calls=previous.api_calls,
        refresh_key=previous.refresh_key,
        handovers=previous.handovers,
    )
    # The key (and, in a new sandbox, the clients behind it) before a slot is taken: a slot taken "now" must not
    # pass while a cold sandbox builds what the call needs.
    client = svc.client(refresh=bool(previous.refresh_key))
    slot = _create_slot(svc, previous, backfill=job.intake == BACKFILL)
    if slot.wait_s >= 1:
        return handover.wait_or_hand_over(svc, payload, waiting, slot)
    image, masks = _api_inputs(svc, job)  # before the slot: only the POST itself is on the clock
    seen: list[budget.Standing] = []  # the credit budget, as the claim found it

    def claim() -> CreateState | None:
        # At the slot, just before the POST: a budget read earlier would let the creates queued close together
        # all pass it. One the budget holds leaves its slot unused and takes a new place after its wait.
        held = budget.standing(svc, job.operation)
        seen.extend([held] if held is not None else [])
        if held is not None and held.holds:
            held_state = replace(waiting, budget_used=held.used_percent)
            return handover.wait_or_hand_over(svc, payload, held_state, None, wait_s=svc.settings.budget_recheck_s)
        if storage.claim(svc, name, job.operation.name):
            return None
        return _from_claim(svc, job.operation, storage.read_claim(svc, name) or Claim(), previous)  # another holds it

    made = calling.call_in_slot(
        svc,
        slot.slot_at,
        lambda: _create_call(svc, Attempt(job, name, previous, client), image, masks),
        otherwise=waiting,
        prepare=claim,
    )
    return made if not seen or made.budget_used is not None else replace(made, budget_used=seen[-1].used_percent)


def _settled(svc: Services, payload: StepInput) -> CreateState | None:
    """The attempt's answer when it needs no slot: a claim found, the upload replaced, a paid task resumed."""
    job, previous, name = payload.job, payload.create, str(payload.execution)
    if previous.status == "new":
        tally.started(svc)  # here, not in submit: a redriven job starts here too
    # Checked on every attempt: a retried step gets the same input as the attempt that may have reached the API.
    found = storage.read_claim(svc, name)
    if found is not None:
        return _from_claim(svc, job.operation, found, previous)
    replaced = _replaced(svc, job)
    if replaced is not None:
        return _create_failed(previous, *replaced)
    if previous.status == "resume" and previous.task_id:
        # A redrive of a job whose task was paid and can still be read: poll it, never create another. Its
        # deadline runs from now (the old one has passed).
        tally.count(svc, started=1, created=1)  # in flight again; its credits were counted when it was paid
        return _created(svc, job.operation, previous.task_id, svc.clock(), replace(previous, api_calls=0))
    return None


def _replaced(svc: Services, job: Job) -> tuple[str, dict[str, Any]] | None:
    """(reason, error) when the upload is no longer the key's newest version: a newer upload or a delete came
    before its create, so nothing is paid for it."""
    found = keyrecord.standing(svc, job.upload)
    if found.state == keyrecord.NEWEST:
        return None
    if found.state == keyrecord.DELETED:
        return Reason.OBJECT_MISSING, {"message": "the upload was deleted before its task was created"}
    message = f"version {found.newest_version} of the key replaced this upload before its task was created"
    return Reason.SUPERSEDED, {"message": message}


@dataclass(frozen=True)
class Attempt:
    """One attempt at the POST: the job, the execution it belongs to, the state before it, the client to use."""

    job: Job
    execution: str
    previous: CreateState
    client: PicWishClient


def _create_call(svc: Services, attempt: Attempt, image: Any, masks: dict[str, Any]) -> CreateState:
    """The POST (its claim already written) and its answer turned into the step's output. A 401 gets one more
    attempt, in a slot of its own, with the key read again (it may have been rotated): every API call spends the
    budget through a slot. Answers that prove no task was made release the claim, so the next attempt may POST."""
    op, name = attempt.job.operation, attempt.execution
    sent = replace(attempt.previous, api_calls=attempt.previous.api_calls + 1)
    try:
        task = attempt.client.create_task(op.name, image, attempt.job.options, **masks)
    except AuthenticationError as exc:
        storage.release_claim(svc, name)
        if attempt.previous.refresh_key:
            return _create_failed(sent, Reason.UNAUTHORIZED, exc)
        later = calling.wait_for(svc, svc.limiter().reserve(svc.clock()))
        return replace(sent, status="wait", refresh_key=True).waiting(later)
    except RateLimitError as exc:
        storage.release_claim(svc, name)
        sent = replace(sent, throttles=sent.throttles + 1)
        if sent.throttles > svc.settings.max_throttles:
            return _create_failed(sent, Reason.RATE_LIMITED, exc)
        after = svc.limiter().reserve(svc.clock() + (exc.retry_after or 1.0))
        return replace(sent, status="wait", refresh_key=None).waiting(calling.wait_for(svc, after))
    except APIConnectionError as exc:
        if not exc.request_sent:
            storage.release_claim(svc, name)
            raise TransientApiError(str(exc)) from None
        return _create_failed(sent, Reason.AMBIGUOUS_CREATE, exc)
    except (APIServerError, UnexpectedResponseError) as exc:
        # The API may have made (and billed) the task: repeating blindly could pay twice. The claim stays.
        return _create_failed(sent, Reason.AMBIGUOUS_CREATE, exc)
    except PicWishError as exc:
        storage.release_claim(svc, name)
        return _create_failed(sent, Reason.REJECTED, exc)
    created_at = svc.clock()
    storage.record_task(svc, name, task.task_id, created_at)
    tally.created(svc, op.credits)
    return _created(svc, op, task.task_id, created_at, sent)


def _create_slot(svc: Services, previous: CreateState, *, backfill: bool) -> Waiting:
    """The slot this create waits for: the one it already holds, a slot right away when it woke too late for
    that one (it has waited its turn), else a place in its create lane (an upload's, or a backfill's)."""
    limiter = svc.limiter()
    if previous.slot_at is None:
        place = limiter.reserve_create(CREATE_LANE_GAP, backfill=backfill, live_share=svc.settings.live_share)
        return calling.wait_for(svc, place)
    if limiter.missed(previous.slot_at):
        return calling.wait_for(svc, limiter.reserve(svc.clock()))
    return calling.wait_for(svc, previous.slot_at)


def _create_failed(counts: CreateState, reason: str, error: PicWishError | dict[str, Any]) -> CreateState:
    record = error if isinstance(error, dict) else error.to_record()
    return CreateState(
        status="failed", reason=reason, error=record, throttles=counts.throttles, api_calls=counts.api_calls
    )


def _created(svc: Services, op: Operation, task_id: str, created_at: float, counts: CreateState) -> CreateState:
    limiter = svc.limiter()
    schedule = limiter.schedule()
    durations = plan.belief_of(schedule, op, svc.settings.wait_scale)
    busy = schedule.busy(svc.clock())
    first = plan.first_poll(created_at, durations, busy=busy)
    return CreateState(
        status="created",
        task_id=task_id,
        created_at=created_at,
        deadline_at=created_at + svc.settings.deadline_for(op.name),
        api_calls=counts.api_calls,
        throttles=counts.throttles,
    ).waiting(calling.poll_at(svc, first, busy=busy))


def _api_inputs(svc: Services, job: Job) -> tuple[Any, dict[str, Any]]:
    """(image, mask=..., retain_mask=...) as presigned URLs (default) or bytes, per the deploy-time switch, each at
    the version submit judged. A URL longer than the API accepts (a long key signs long) is sent as bytes."""
    upload = job.upload
    refs = {"image": (upload.bucket, upload.key, upload.version_id)}
    refs.update({slot: (upload.bucket, key, job.mask_versions.get(slot)) for slot, key in job.masks.items()})
    sources: dict[str, Any] = {}
    for slot, (bucket, key, version) in refs.items():
        params = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        if svc.settings.input_mode != "bytes" and not _has_dot_segment(key):
            url = svc.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=svc.settings.presign_expiry_s)
            if len(url) <= MAX_URL_LENGTH:
                sources[slot] = url
                continue
        # The upload keeps the object's file name: the API (and the mock's rules) see what the user named.
        sources[slot] = (key.rsplit("/", 1)[-1], svc.s3.get_object(**params)["Body"].read())
    image = sources.pop("image")
    return image, sources


def _has_dot_segment(key: str) -> bool:
    """`.` and `..` segments are rewritten by every fetcher (RFC 3986 dot-segment removal) before the request is
    made, so a presigned URL naming them is fetched at another path than was signed: such images go as bytes."""
    return any(segment in (".", "..") for segment in key.split("/"))


def _from_claim(svc: Services, op: Operation, claim: Claim, previous: CreateState) -> CreateState:
    if claim.task_id and claim.created_at is not None:
        # The calls that made the task were counted by the attempt that made them.
        return _created(svc, op, claim.task_id, claim.created_at, replace(previous, api_calls=0))
    claimed = iso(claim.claimed_at)
    error = PicWishError(
        f"an earlier attempt claimed this create at {claimed} and may have reached the API, but its answer was "
        "never recorded; it is not repeated, so the upload is not paid twice (re-upload it to try again)"
    ).to_record()
    error["claimed_at"] = claimed
    return _create_failed(previous, Reason.AMBIGUOUS_CREATE, error)
