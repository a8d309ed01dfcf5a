"""Rendered results behind opaque tokens, each link with its own expiry, answered as object storage answers."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .imaging import OutputFile


@dataclass
class StoredResult:
    data: bytes
    content_type: str
    filename: str
    expires_at: float


class ResultStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.results: dict[str, StoredResult] = {}

    def reset(self) -> None:
        with self.lock:
            self.results.clear()

    def put(self, files: list[OutputFile], ttl_s: float) -> list[tuple[str, str]]:
        """Store a task's files; returns (output name, token) for each."""
        expires = self.clock() + ttl_s
        outputs = []
        with self.lock:
            for f in files:
                token = secrets.token_urlsafe(18)
                self.results[token] = StoredResult(f.data, f.content_type, f.filename, expires)
                outputs.append((f.name, token))
        return outputs

    def stored(self, token: str) -> StoredResult | None:
        """The result under `token`, expired or not (a task's answer still names it)."""
        with self.lock:
            return self.results.get(token)

    def fetch(self, token: str) -> StoredResult | None:
        """The result a link may still fetch: None when unknown or expired."""
        stored = self.stored(token)
        if stored is None or self.clock() > stored.expires_at:
            return None
        return stored
