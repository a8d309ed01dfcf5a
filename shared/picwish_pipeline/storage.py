"""The steps' S3 and DynamoDB reads and writes: capped upload reads, records, results written at their final
keys, and the task record (a claim before the POST, the task id after it)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from picwish_visual.catalog import Operation
from picwish_visual.images import EXTENSIONS, sniff_format
from picwish_visual.results import Output
from picwish_visual.validation import check_image_size

from .payloads import Job
from .services import Services
from .uploads import STAGING, JobPath

logger = logging.getLogger(__name__)

NOT_FOUND = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})  # S3 GET and HEAD say it differently
CLAIM_TTL_S = 90 * 24 * 3600


def put_json(s3: Any, bucket: str, key: str, record: dict[str, Any]) -> None:
    body = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


@dataclass(frozen=True)
class Read:
    """An object's bytes as read, its user metadata, and the version they are (None in an unversioned bucket)."""

    data: bytes
    metadata: dict[str, str]
    version_id: str | None


def read_capped(
    svc: Services, op: Operation, field_name: str, bucket: str, key: str, version_id: str | None = None
) -> Read | None:
    """An object, None when it does not exist. Its size is judged by a HEAD before a byte is read, and the GET
    names the version the HEAD saw, so what is judged is what is read (and what the API will be sent)."""
    params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    try:
        head = svc.s3.head_object(**params)
        check_image_size(op, field_name, int(head.get("ContentLength", 0)))
        version = version_id or _real_version(head.get("VersionId"))
        body = svc.s3.get_object(**{**params, **({"VersionId": version} if version else {})})["Body"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return None
        raise
    try:
        data = body.read(op.max_bytes + 1)
    finally:
        body.close()
    check_image_size(op, field_name, len(data))
    return Read(data, dict(head.get("Metadata") or {}), version)


def _real_version(version_id: str | None) -> str | None:
    """S3 names an object written before versioning was enabled "null": it is read without a version."""
    return None if version_id in (None, "", "null") else version_id


def read_json(svc: Services, bucket: str, key: str) -> dict[str, Any] | None:
    """A record, None when there is none."""
    try:
        body = svc.s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return None
        raise
    return json.loads(body.read())


def read_staged(svc: Services, key: str) -> bytes:
    """An output the poll step staged (it came as bytes)."""
    return svc.s3.get_object(Bucket=svc.settings.output_bucket, Key=key)["Body"].read()


def put_task_item(svc: Services, item: dict[str, Any], condition: str, values: dict[str, Any] | None = None) -> bool:
    """A conditional put into the task table (claims, record locks); False when the condition did not hold."""
    try:
        svc.dynamodb.put_item(
            TableName=svc.settings.tasks_table,
            Item=item,
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def claim(svc: Services, name: str, operation: str) -> bool:
    """Write this execution's claim to create its task; False when a claim already exists."""
    now = svc.clock()
    item = {
        "execution": {"S": name},
        "claimed_at": {"N": repr(now)},
        "operation": {"S": operation},
        "expires_at": {"N": str(int(now) + CLAIM_TTL_S)},
    }
    return put_task_item(svc, item, "attribute_not_exists(execution)")


@dataclass(frozen=True)
class Claim:
    """An execution's task record: when its create was claimed and, once the API answered, the task."""

    claimed_at: float | None = None
    task_id: str | None = None
    created_at: float | None = None


def read_claim(svc: Services, name: str) -> Claim | None:
    item = svc.dynamodb.get_item(
        TableName=svc.settings.tasks_table, Key={"execution": {"S": name}}, ConsistentRead=True
    ).get("Item")
    if not item:
        return None
    return Claim(
        claimed_at=float(item["claimed_at"]["N"]) if "claimed_at" in item else None,
        task_id=item["task_id"]["S"] if "task_id" in item else None,
        created_at=float(item["created_at"]["N"]) if "created_at" in item else None,
    )


def release_claim(svc: Services, name: str) -> None:
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


def record_task(svc: Services, name: str, task_id: str, created_at: float) -> None:
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


def stash_outputs(svc: Services, job: Job, execution: str, outputs: dict[str, Output]) -> dict[str, dict[str, str]]:
    """URLs go on in the state; results that came as bytes wait under `staging/`, so no bytes enter the state and
    nothing is written under the key before finalize knows this upload is still the key's newest."""
    stashed: dict[str, dict[str, str]] = {}
    for name, output in outputs.items():
        if output.data is None:  # Output.parse makes a URL or bytes, never neither
            stashed[name] = {"url": str(output.url)}
        else:
            key = f"{STAGING}{execution}/{name}"
            svc.s3.put_object(Bucket=svc.settings.output_bucket, Key=key, Body=output.data)
            stashed[name] = {"key": key}
    return stashed


def output_key(path: JobPath, name: str, data: bytes) -> str:
    return path.output_key(name, EXTENSIONS.get(sniff_format(data) or "", "bin"))


def exists(svc: Services, bucket: str, key: str) -> bool:
    try:
        svc.s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in NOT_FOUND:
            return False
        raise
