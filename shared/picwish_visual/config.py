"""The API client's environment variables, named once here, read once, overridable by explicit arguments."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .catalog import DEFAULT_BASE_URL

# Client
ENV_BASE_URL = "PICWISH_BASE_URL"
ENV_API_KEY = "PICWISH_API_KEY"  # only for scripts and the contract suite; Lambdas read the secret
ENV_CONNECT_TIMEOUT = "PICWISH_CONNECT_TIMEOUT_S"
ENV_READ_TIMEOUT = "PICWISH_READ_TIMEOUT_S"
ENV_RESULT_HOSTS = "PICWISH_RESULT_HOSTS"  # comma-separated hosts result downloads may come from
ENV_ALLOW_HTTP_RESULTS = "PICWISH_ALLOW_HTTP_RESULTS"  # "true" only for the local stack's loopback mock
ENV_MAX_RESULT_BYTES = "PICWISH_MAX_RESULT_BYTES"


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _hosts(value: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


_CLIENT_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "base_url": (ENV_BASE_URL, str),
    "connect_timeout_s": (ENV_CONNECT_TIMEOUT, float),
    "read_timeout_s": (ENV_READ_TIMEOUT, float),
    "result_hosts": (ENV_RESULT_HOSTS, _hosts),
    "allow_http_results": (ENV_ALLOW_HTTP_RESULTS, _bool),
    "max_result_bytes": (ENV_MAX_RESULT_BYTES, int),
}


@dataclass(frozen=True)
class ClientSettings:
    base_url: str = DEFAULT_BASE_URL
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    result_hosts: tuple[str, ...] = ()  # empty: any public HTTPS host
    allow_http_results: bool = False
    max_result_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Defaults, then the environment, then explicit arguments (which win)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            env_name, convert = _CLIENT_ENV[f.name]
            if environ.get(env_name):
                values[f.name] = convert(environ[env_name])
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
