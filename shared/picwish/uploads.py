"""The S3 contract: which upload is which job, where its masks, results and failure record live, and the
execution name that makes a job start at most once."""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from .catalog import OPERATIONS

INCOMING = "incoming/"
EXECUTION_NAME_MAX = 80


@dataclass(frozen=True)
class UploadRef:
    """One S3 object version as an event names it. Its identity is what makes two deliveries one job."""

    bucket: str
    key: str  # decoded
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None

    @classmethod
    def from_event_record(cls, record: dict) -> UploadRef:
        """Every record is decoded on its own (`unquote_plus`): S3 encodes keys, spaces as '+'."""
        s3 = record["s3"]
        obj = s3["object"]
        return cls(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            version_id=obj.get("versionId") or None,
            etag=(obj.get("eTag") or obj.get("etag") or "").strip('"') or None,
            sequencer=obj.get("sequencer") or None,
        )

    @property
    def identity(self) -> str:
        """Version id when versioning is on; else the sequencer (new per write); else the ETag.

        eventTime and request ids are left out on purpose: a redelivered event differs only in those.
        """
        return self.version_id or self.sequencer or self.etag or ""

    def execution_name(self, operation: str) -> str:
        """`[0-9A-Za-z_-]`, at most 80 characters, the same for every delivery of this upload."""
        digest = hashlib.sha256("\0".join((self.bucket, self.key, self.identity)).encode()).hexdigest()
        prefix = re.sub(r"[^0-9A-Za-z_-]", "_", operation)[:20] or "job"
        return f"{prefix}-{digest}"[:EXECUTION_NAME_MAX]

    def to_dict(self) -> dict:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "sequencer": self.sequencer,
        }


@dataclass(frozen=True)
class JobPath:
    """`incoming/<operation>/<any/path>/<file>` split into its parts; the operation may be unknown."""

    operation: str
    subpath: str  # "" or "a/b"
    filename: str

    @property
    def stem(self) -> str:
        stem, _ext = posixpath.splitext(self.filename)
        return stem or self.filename

    @property
    def known_operation(self) -> bool:
        return self.operation in OPERATIONS

    def _under(self, root: str) -> str:
        middle = f"{self.subpath}/" if self.subpath else ""
        return f"{root}/{self.operation or 'unknown'}/{middle}"

    @property
    def result_prefix(self) -> str:
        return f"{self._under('results')}{self.stem}/"

    @property
    def failure_key(self) -> str:
        return f"{self._under('failed')}{self.stem}.json"

    @property
    def result_key(self) -> str:
        """`result.json`: written last, so its presence means the whole result is there."""
        return f"{self.result_prefix}result.json"

    @property
    def record_keys(self) -> tuple[tuple[str, str], ...]:
        """Where the job's one record can be, result first: ("result", key), ("failed", key)."""
        return (("result", self.result_key), ("failed", self.failure_key))

    def mask_key(self, slot: str) -> str:
        """`masks/<op>/<path>/<stem>.png` for the mask, `<stem>.retain.png` for the retain mask."""
        suffix = ".png" if slot == "mask" else ".retain.png"
        return f"{self._under('masks')}{self.stem}{suffix}"


def parse_job_path(key: str) -> JobPath | None:
    """None for keys outside `incoming/` (the trigger's filter never sends those; anything else is a job)."""
    if not key.startswith(INCOMING):
        return None
    parts = key[len(INCOMING) :].split("/")
    if len(parts) < 2:
        return JobPath(operation="", subpath="", filename=parts[0])
    return JobPath(operation=parts[0], subpath="/".join(parts[1:-1]), filename=parts[-1])
