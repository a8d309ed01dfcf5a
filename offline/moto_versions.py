"""S3 event notifications that name the object's version, as AWS's do and moto's do not.

- In a versioned bucket, S3's `ObjectCreated` records carry `s3.object.versionId`; moto's carry none. The pipeline
  pins every read, presigned URL and record to that version, so without it every offline job would read "the
  current object" — exactly what a re-upload during a job must not change.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.s3 import notifications


def name_versions_in_events() -> None:
    original = notifications._get_s3_event
    if getattr(original, "_names_versions", False):
        return

    @functools.wraps(original)
    def with_version(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        version = getattr(key, "version_id", None)
        if bucket.is_versioned and version not in (None, "null"):
            for record in event["Records"]:
                record["s3"]["object"]["versionId"] = str(version)
        return event

    with_version._names_versions = True  # type: ignore[attr-defined]
    notifications._get_s3_event = with_version
