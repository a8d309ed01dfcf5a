"""S3 limits that moto does not enforce but AWS does, so the local stack fails where AWS would:

- a key longer than 1,024 bytes (UTF-8) is refused with `KeyTooLongError` (moto stored it). Output keys derived
  from long input keys went past it unnoticed offline.
"""

from __future__ import annotations

import functools

from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend

S3_KEY_MAX_BYTES = 1024


class KeyTooLong(S3ClientError):
    code = "KeyTooLongError"

    def __init__(self, key: str) -> None:
        super().__init__("KeyTooLongError", f"Your key is too long ({len(key.encode())} bytes; at most 1024)")


def enforce_s3_limits() -> None:
    for name in ("put_object", "create_multipart_upload"):  # the pipeline writes no other way (no copies)
        _check_key_length(name)


def _check_key_length(name: str) -> None:
    original = S3Backend.__dict__.get(name)
    if original is None or getattr(original, "_limited", False):
        return

    @functools.wraps(original)
    def limited(self, bucket_name, key_name, *args, __original=original, **kwargs):
        if len(str(key_name).encode()) > S3_KEY_MAX_BYTES:
            raise KeyTooLong(str(key_name))
        return __original(self, bucket_name, key_name, *args, **kwargs)

    limited._limited = True
    setattr(S3Backend, name, limited)
