"""The reasons a failure record gives, one name each: users filter, count and alarm on these strings, so a value
is never renamed (the README lists every one; a test keeps the two equal)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Refused before anything is paid
    INVALID_INPUT = "invalid input"
    UNKNOWN_OPERATION = "unknown operation"
    OBJECT_MISSING = "object missing"
    INTERNAL_ERROR = "internal error"
    SUPERSEDED = "replaced by a newer upload"  # before its create: nothing was paid for it
    # The create
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate limited"
    AMBIGUOUS_CREATE = "ambiguous create"
    REJECTED = "rejected by the API"
    # The task and its polls
    TASK_FAILED = "task failed"
    UNKNOWN_STATE = "unknown state"
    UNEXPECTED_RESPONSE = "unexpected response"
    API_ERROR = "api error"
    TIMEOUT = "timeout"
    RESULT_EXPIRED = "result expired"
    # A step that threw, or an execution that ended without a record (the backstop)
    STEP_FAILED = "step failed"
    EXECUTION_FAILED = "execution failed"
    EXECUTION_TIMED_OUT = "execution timed_out"
    EXECUTION_ABORTED = "execution aborted"

    @classmethod
    def of_execution(cls, status: str) -> str:
        """The backstop's reason for an execution that ended `status` (FAILED, TIMED_OUT, ABORTED, …)."""
        return f"execution {status.lower()}"


# The upload itself was refused: running it again cannot change the answer (fix it and upload it again).
REFUSED = frozenset({Reason.INVALID_INPUT, Reason.UNKNOWN_OPERATION, Reason.OBJECT_MISSING})
