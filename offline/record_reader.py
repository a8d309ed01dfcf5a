"""Reading a job's record back from the output bucket: its result.json or its failure record, whichever exists."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from picwish_pipeline.uploads import parse_job_path


def read_records(s3: Any, bucket: str, upload_key: str) -> list[tuple[str, dict]]:
    """Every record present for the upload, result first (exactly one when the job is done)."""
    found = []
    for kind, record_key in parse_job_path(upload_key).record_keys:
        with contextlib.suppress(s3.exceptions.NoSuchKey):
            found.append((kind, json.loads(s3.get_object(Bucket=bucket, Key=record_key)["Body"].read())))
    return found


def wait_record(
    s3: Any, bucket: str, upload_key: str, *, timeout_s: float = 60, wanted: str | None = None
) -> tuple[str, dict]:
    """Poll until the upload has a record (of the `wanted` kind, if given); ("result" | "failed", record)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for kind, record in read_records(s3, bucket, upload_key):
            if wanted in (None, kind):
                return kind, record
        time.sleep(0.05)
    raise AssertionError(f"no record for {upload_key} after {timeout_s} s")
