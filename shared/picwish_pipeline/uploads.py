"""The S3 contract: which upload is which job, where its masks, results and failure record live, and the
execution name that makes a job start at most once."""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from picwish_visual.catalog import OPERATIONS
from picwish_visual.results import CLASS_NAME  # output names are class names or the catalog's, all of this shape

INCOMING = "incoming/"
RESULTS = "results/"
FAILED = "failed/"
SUPERSEDED = "superseded/"  # records of jobs whose version was replaced while they ran
STAGING = "staging/"  # outputs that came as bytes, until finalize writes them under the key
EXECUTION_NAME_MAX = 80
S3_KEY_MAX_BYTES = 1024
MAX_OUTPUT_NAME_BYTES = 40  # `<name>.<ext>` under a result prefix: class names are capped to fit
HASH_CHARS = 32
_SHORTENED = re.compile(rf"~[0-9a-f]{{{HASH_CHARS}}}$")


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

    @classmethod
    def from_dict(cls, data: dict) -> UploadRef:
        """From a record's or a state's `source`; fields it lacks are unset."""
        return cls(
            bucket=str(data.get("bucket") or ""),
            key=str(data.get("key") or ""),
            version_id=data.get("version_id"),
            etag=data.get("etag"),
            sequencer=data.get("sequencer"),
        )

    @property
    def identity(self) -> str:
        """Version id when versioning is on; else the sequencer (new per write); else the ETag.

        eventTime and request ids are left out on purpose: a redelivered event differs only in those.
        """
        return self.version_id or self.sequencer or self.etag or ""

    def execution_name(self, operation: str, attempt: str = "") -> str:
        """`[0-9A-Za-z_-]`, at most 80 characters, the same for every delivery of this upload. `attempt` names a
        later job of the same version apart (a backfill running a failed or reprocessed upload again)."""
        parts = (self.bucket, self.key, self.identity, *((attempt,) if attempt else ()))
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
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


def _fit(relative: str) -> str:
    """The key's part below `incoming/`, as output keys use it: unchanged when every output key it leads to fits
    S3's limit, else cut on a character boundary and ended by a hash of the whole part. A part that already ends
    like a hash is hashed too, so a short key can never take the place of a shortened long one."""
    room = S3_KEY_MAX_BYTES - len(RESULTS) - 1 - MAX_OUTPUT_NAME_BYTES  # results/<relative>/<longest output>
    encoded = relative.encode()
    if len(encoded) <= room and not _SHORTENED.search(relative):
        return relative
    digest = hashlib.sha256(encoded).hexdigest()[:HASH_CHARS]
    head = encoded[: room - HASH_CHARS - 1].decode(errors="ignore")
    return f"{head}~{digest}"


@dataclass(frozen=True)
class JobPath:
    """`incoming/<operation>/<any/path>/<file>` split into its parts; the operation may be unknown.

    Output keys are the input key's part below `incoming/` under another root, so two uploads never share one
    (`me.jpg` and `me.png` get `results/<op>/me.jpg/` and `results/<op>/me.png/`).
    """

    operation: str
    subpath: str  # "" or "a/b"
    filename: str
    relative: str  # the key below `incoming/`, shortened to fit when it is very long

    @property
    def stem(self) -> str:
        stem, _ext = posixpath.splitext(self.filename)
        return stem or self.filename

    @property
    def known_operation(self) -> bool:
        return self.operation in OPERATIONS

    @property
    def result_prefix(self) -> str:
        return f"{RESULTS}{self.relative}/"

    @property
    def failure_key(self) -> str:
        return f"{FAILED}{self.relative}.json"

    @property
    def result_key(self) -> str:
        """`result.json`: written last, so its presence means the whole result is there."""
        return f"{self.result_prefix}result.json"

    @property
    def record_keys(self) -> tuple[tuple[str, str], ...]:
        """Where the job's one record can be, result first: ("result", key), ("failed", key)."""
        return (("result", self.result_key), ("failed", self.failure_key))

    def output_key(self, name: str, extension: str) -> str:
        """Where one result goes; `name` is a catalog output name or a class name the API sent."""
        if not CLASS_NAME.fullmatch(name) or len(f"{name}.{extension}") > MAX_OUTPUT_NAME_BYTES:
            raise ValueError(f"not an output name: {name!r}")
        return f"{self.result_prefix}{name}.{extension}"

    def mask_key(self, slot: str) -> str | None:
        """`masks/<op>/<path>/<stem>.png` for the mask, `<stem>.retain.png` for the retain mask; None when that
        key would be longer than S3 allows (no such mask can exist)."""
        suffix = ".png" if slot == "mask" else ".retain.png"
        middle = f"{self.subpath}/" if self.subpath else ""
        key = f"masks/{self.operation}/{middle}{self.stem}{suffix}"
        return key if len(key.encode()) <= S3_KEY_MAX_BYTES else None


def parse_job_path(key: str) -> JobPath | None:
    """None for keys outside `incoming/` (the trigger's filter never sends those) and for folder markers (keys
    ending in `/`, which the S3 console creates); anything else is a job."""
    if not key.startswith(INCOMING) or key.endswith("/"):
        return None
    relative = key[len(INCOMING) :]
    parts = relative.split("/")
    if len(parts) < 2:
        return JobPath(operation="", subpath="", filename=parts[0], relative=_fit(relative))
    return JobPath(operation=parts[0], subpath="/".join(parts[1:-1]), filename=parts[-1], relative=_fit(relative))
