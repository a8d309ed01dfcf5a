"""`picwish-ops redrive`: run failed uploads again. A job whose task was paid for and can still be read (its task
id recorded under an hour ago, ended by a revoked key, its deadline or an expired link) is **resumed**: a new
execution polls that task and fetches its result, nothing is created. Any other is run again the way a re-upload
does — the object is copied onto itself (same bytes, same metadata), S3 announces a new version, and the
pipeline makes it a new job whose record replaces the failure record. Never an upload that has a result, one a
newer upload replaced, an input the pipeline refused (it would be refused again), or an "ambiguous create"
unless asked: that task may have been paid. Each failure is claimed before it is run again (a conditional write
of its record), so two redrives at once run it once."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from picwish_pipeline.payloads import CreateState, Job, StepInput
from picwish_pipeline.reasons import REFUSED, Reason
from picwish_pipeline.storage import NOT_FOUND
from picwish_pipeline.uploads import EXECUTION_NAME_MAX, FAILED, parse_job_path

from .target import Target

PROGRESS_EVERY = 500
Progress = Callable[[str], None]  # told how far a long command has got, one line at a time

AMBIGUOUS = Reason.AMBIGUOUS_CREATE
# Failures after the task was paid for, while it may still be read: its links live an hour after it ends.
RESUMABLE = frozenset({Reason.UNAUTHORIZED, Reason.TIMEOUT, Reason.RESULT_EXPIRED})
RESUME_WINDOW = timedelta(minutes=50)


def records(target: Target, s3: Any, since: datetime, progress: Progress | None = None) -> list[dict[str, Any]]:
    """The failure records written since `since`; `progress` hears how many, every PROGRESS_EVERY read."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.output_bucket, Prefix=FAILED):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json") and obj["LastModified"] >= since:
                found.append(json.loads(s3.get_object(Bucket=target.output_bucket, Key=obj["Key"])["Body"].read()))
                if progress and len(found) % PROGRESS_EVERY == 0:
                    progress(f"{len(found)} failure records read")
    return found


@dataclass(frozen=True)
class Candidate:
    upload: str
    reason: str
    recorded_at: str | None
    decision: str  # "redrive", "resume", or why not
    record: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def plan(
    target: Target,
    s3: Any,
    since: datetime,
    *,
    reason: str | None = None,
    prefix: str | None = None,
    include_ambiguous: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> list[Candidate]:
    found = []
    for record in records(target, s3, since, progress):
        if record.get("outcome") != "failed" or not record.get("source"):
            continue
        key, why = record["source"]["key"], record.get("reason") or "unknown"
        if reason is not None and not fnmatch.fnmatchcase(why, reason):
            continue
        if prefix is not None and not key.startswith(prefix):
            continue
        decision = _decide(target, s3, record, include_ambiguous, now or datetime.now(UTC))
        found.append(Candidate(key, why, record.get("recorded_at"), decision, record))
    return sorted(found, key=lambda c: c.upload)


def _decide(target: Target, s3: Any, record: dict[str, Any], include_ambiguous: bool, now: datetime) -> str:
    key, why = record["source"]["key"], record.get("reason") or "unknown"
    if record.get("redriven_at"):
        return f"skip: redriven at {record['redriven_at']} (its new job has not ended yet)"
    if _has_result(target, s3, key):
        return "skip: it has a result"
    if why in REFUSED:
        return f"skip: {why} (the upload itself was refused; fix it and upload again)"
    if why == AMBIGUOUS and not include_ambiguous:
        return "skip: ambiguous create (its task may have been paid; --include-ambiguous to run it again)"
    try:
        head = s3.head_object(Bucket=target.input_bucket, Key=key)
    except ClientError:
        return "skip: the upload is gone"
    failed_version = record["source"].get("version_id")
    if failed_version and head.get("VersionId") != failed_version:
        return "skip: a newer upload of the key replaced it (its own job decides the record)"
    return "resume" if _resumable(record, now) else "redrive"


def _resumable(record: dict[str, Any], now: datetime) -> bool:
    recorded = record.get("recorded_at")
    if record.get("reason") not in RESUMABLE or not record.get("task_id") or not recorded:
        return False
    return now - datetime.fromisoformat(recorded) < RESUME_WINDOW


def _has_result(target: Target, s3: Any, key: str) -> bool:
    """The result.json of exactly this upload's key, whenever written (the window may start after it), where the
    pipeline writes it: a long key's outputs go under a shortened path."""
    path = parse_job_path(key)
    if path is None:
        return False
    try:
        s3.head_object(Bucket=target.output_bucket, Key=path.result_key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return False
        raise
    return True


def redrive(
    target: Target, s3: Any, candidates: list[Candidate], sfn: Any = None, progress: Progress | None = None
) -> list[str]:
    """Each candidate, once claimed: resumed (a new execution polls its paid task) or copied onto itself (a new
    version, and S3's event starts its new job)."""
    done: list[str] = []
    for number, candidate in enumerate(candidates, 1):
        if progress and number % PROGRESS_EVERY == 0:
            progress(f"{number} of {len(candidates)} judged, {len(done)} redriven")
        if candidate.decision not in ("redrive", "resume") or not _claim(target, s3, candidate.upload):
            continue
        if candidate.decision == "resume":
            _resume(target, sfn, candidate.record)
        else:
            _copy_onto_itself(target, s3, candidate.upload)
        done.append(candidate.upload)
    return done


def _claim(target: Target, s3: Any, key: str) -> bool:
    """Mark the upload's failure record as redriven, on the condition that nobody changed it since it was read:
    of two redrives at once, one claims it and runs it, the other finds it claimed (S3's conditional write)."""
    path = parse_job_path(key)
    if path is None:
        return False
    try:
        got = s3.get_object(Bucket=target.output_bucket, Key=path.failure_key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return False  # a new job replaced the record meanwhile
        raise
    record = json.loads(got["Body"].read())
    if record.get("outcome") != "failed" or record.get("redriven_at"):
        return False
    record["redriven_at"] = datetime.now(UTC).isoformat()
    try:
        s3.put_object(
            Bucket=target.output_bucket,
            Key=path.failure_key,
            Body=json.dumps(record, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
            IfMatch=got["ETag"],
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
            return False
        raise
    return True


def _copy_onto_itself(target: Target, s3: Any, key: str) -> None:
    head = s3.head_object(Bucket=target.input_bucket, Key=key)
    s3.copy_object(
        Bucket=target.input_bucket,
        Key=key,
        CopySource={"Bucket": target.input_bucket, "Key": key},
        MetadataDirective="REPLACE",  # S3 refuses a copy onto itself that changes nothing
        Metadata=head.get("Metadata", {}),
        ContentType=head.get("ContentType", "binary/octet-stream"),
    )


def _resume(target: Target, sfn: Any, record: dict[str, Any]) -> None:
    """An execution of the same machine whose create hands in the paid task: it polls, fetches and records."""
    wanted = {name: record.get(name) for name in ("operation", "options", "masks", "mask_versions")}
    job = Job.from_dict({"upload": record["source"], **wanted})
    paid = CreateState(status="resume", task_id=record["task_id"])
    execution_input = StepInput(job, create=paid).to_dict()
    digest = hashlib.sha256(f"{record['source']['key']}\0{record['task_id']}".encode()).hexdigest()
    name = f"resume-{digest}"[:EXECUTION_NAME_MAX]
    try:
        sfn.start_execution(stateMachineArn=target.state_machine_arn, name=name, input=json.dumps(execution_input))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
