"""Errors the mock answers with, each rendered by one handler as the API's envelope {status, message, data}."""

from __future__ import annotations

from picwish_visual.states import HTTP_STATUSES


class MockAPIError(Exception):
    status = 500

    def __init__(self, message: str | None = None, *, status: int | None = None, headers: dict | None = None):
        self.status = status or type(self).status
        self.message = message or HTTP_STATUSES.get(self.status, "Error.")
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(MockAPIError):
    status = 400

    def __init__(self, param: str, rule: str):
        super().__init__(f"{param}: {rule}")
        self.param = param


class Unauthorized(MockAPIError):
    status = 401


class NotFound(MockAPIError):
    status = 404


class PayloadTooLarge(MockAPIError):
    status = 413


class TooManyRequests(MockAPIError):
    status = 429


class AdminError(Exception):
    """A malformed request to the scenario API (answered 400 with a plain JSON error, not the API envelope)."""
