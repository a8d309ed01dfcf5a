"""`picwish-ops redrive`: run failed uploads again, the way a re-upload does — the object is copied onto itself
(same bytes, same metadata), S3 announces a new version, and the pipeline makes it a new job whose result
replaces the failure record. Never an upload that has a result already, never an input the pipeline refused
(it would be refused again), and never an "ambiguous create" unless asked: that task may have been paid."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from picwish_pipeline.reasons import Reason
from picwish_pipeline.uploads import parse_job_path

from .status import records
from .target import Target

# Failures that running again cannot change: the upload itself was refused.
NOT_RETRYABLE = frozenset({Reason.INVALID_INPUT, Reason.UNKNOWN_OPERATION, Reason.OBJECT_MISSING})
AMBIGUOUS = Reason.AMBIGUOUS_CREATE


@dataclass(frozen=True)
class Candidate:
    upload: str
    reason: str
    recorded_at: str | None
    decision: str  # "redrive", or why not


def plan(
    target: Target,
    s3: Any,
    since: datetime,
    *,
    reason: str | None = None,
    prefix: str | None = None,
    include_ambiguous: bool = False,
) -> list[Candidate]:
    found = []
    for record in records(target, s3, since, kinds=("failures",)):
        if record.get("outcome") != "failed" or not record.get("source"):
            continue
        key, why = record["source"]["key"], record.get("reason") or "unknown"
        if reason is not None and not fnmatch.fnmatchcase(why, reason):
            continue
        if prefix is not None and not key.startswith(prefix):
            continue
        found.append(Candidate(key, why, record.get("recorded_at"), _decide(target, s3, key, why, include_ambiguous)))
    return sorted(found, key=lambda c: c.upload)


def _decide(target: Target, s3: Any, key: str, why: str, include_ambiguous: bool) -> str:
    if _has_result(target, s3, key):
        return "skip: it has a result"
    if why in NOT_RETRYABLE:
        return f"skip: {why} (the upload itself was refused; fix it and upload again)"
    if why == AMBIGUOUS and not include_ambiguous:
        return "skip: ambiguous create (its task may have been paid; --include-ambiguous to run it again)"
    try:
        s3.head_object(Bucket=target.input_bucket, Key=key)
    except ClientError:
        return "skip: the upload is gone"
    return "redrive"


def _has_result(target: Target, s3: Any, key: str) -> bool:
    """A result.json for this upload's key, whenever written (the window may start after it), where the pipeline
    writes it: a long key's outputs go under a shortened path."""
    path = parse_job_path(key)
    if path is None:
        return False
    listed = s3.list_objects_v2(Bucket=target.output_bucket, Prefix=path.result_key, MaxKeys=1)
    return bool(listed.get("KeyCount"))


def redrive(target: Target, s3: Any, candidates: list[Candidate]) -> list[str]:
    """Copy each upload onto itself: a new version, and S3's event starts its new job."""
    done = []
    for candidate in candidates:
        if candidate.decision != "redrive":
            continue
        head = s3.head_object(Bucket=target.input_bucket, Key=candidate.upload)
        s3.copy_object(
            Bucket=target.input_bucket,
            Key=candidate.upload,
            CopySource={"Bucket": target.input_bucket, "Key": candidate.upload},
            MetadataDirective="REPLACE",  # S3 refuses a copy onto itself that changes nothing
            Metadata=head.get("Metadata", {}),
            ContentType=head.get("ContentType", "binary/octet-stream"),
        )
        done.append(candidate.upload)
    return done
