"""The API key, read from Secrets Manager through Powertools Parameters (cached), never logged."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities import parameters

CACHE_SECONDS = 300


class SecretValue(str):
    """A str that hides itself from reprs and f-string debugging of containers."""

    def __repr__(self) -> str:
        return "SecretValue('***')"


def get_api_key(
    secret_id: str, *, refresh: bool = False, provider: parameters.SecretsProvider | None = None
) -> SecretValue:
    """The secret's string, or its `api_key` field when it holds JSON. `refresh` skips the cache (after a 401:
    the secret may have been rotated). A handler passes the provider it built at cold start: Powertools' default
    one is made on first use, by every invocation that races to it."""
    fetch = provider.get if provider is not None else parameters.get_secret
    raw = fetch(secret_id, max_age=CACHE_SECONDS, force_fetch=refresh)
    if isinstance(raw, bytes):
        raw = raw.decode()
    text = str(raw).strip()
    if text.startswith("{"):
        text = str(json.loads(text).get("api_key", "")).strip()
    if not text:
        raise ValueError("the API key secret is empty")
    return SecretValue(text)
