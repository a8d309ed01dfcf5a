"""picwish: the Lambda layer package — operation catalog, validation, API client and result download."""

from .catalog import OPERATIONS, Operation, get_operation
from .client import PicWishClient
from .config import ClientSettings
from .download import Downloaded, fetch_output
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
    error_for,
)
from .results import Output, TaskResult
from .retry import Backoff, should_retry
from .states import HTTP_STATUSES, TASK_STATES, StateClass, classify_state
from .validation import validate_request

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
    "classify_state",
    "error_for",
    "fetch_output",
    "get_operation",
    "should_retry",
    "validate_request",
]
