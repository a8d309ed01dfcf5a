"""picwish: a client for the PicWish visual API — operation catalog, validation, the HTTP client, typed errors
and results, result download."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .catalog import OPERATIONS, Operation, get_operation
from .config import ClientSettings
from .errors import (
    APIConnectionError,
    APIServerError,
    AuthenticationError,
    IncompleteResultError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PicWishError,
    RateLimitError,
    ResultDownloadError,
    ResultExpiredError,
    TaskFailedError,
    UnexpectedResponseError,
    UnknownStateError,
    ValidationError,
    WaitTimeoutError,
    error_for,
)
from .results import Output, TaskResult
from .retry import Backoff, should_retry
from .states import HTTP_STATUSES, TASK_STATES, StateClass, classify_state
from .validation import validate_request

if TYPE_CHECKING:
    from .client import PicWishClient
    from .download import Downloaded, fetch_output

# The HTTP parts load on first use (PEP 562): a function that only validates or writes records — most of the
# pipeline's — does not pay for importing requests and urllib3 at its cold start.
_LAZY = {"PicWishClient": ".client", "Downloaded": ".download", "fetch_output": ".download"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HTTP_STATUSES",
    "OPERATIONS",
    "TASK_STATES",
    "APIConnectionError",
    "APIServerError",
    "AuthenticationError",
    "Backoff",
    "ClientSettings",
    "Downloaded",
    "IncompleteResultError",
    "InvalidRequestError",
    "NotFoundError",
    "Operation",
    "Output",
    "PayloadTooLargeError",
    "PicWishClient",
    "PicWishError",
    "RateLimitError",
    "ResultDownloadError",
    "ResultExpiredError",
    "StateClass",
    "TaskFailedError",
    "TaskResult",
    "UnexpectedResponseError",
    "UnknownStateError",
    "ValidationError",
    "WaitTimeoutError",
    "classify_state",
    "error_for",
    "fetch_output",
    "get_operation",
    "should_retry",
    "validate_request",
]
