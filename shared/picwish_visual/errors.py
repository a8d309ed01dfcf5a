"""One exception hierarchy for everything the API or local validation can say, and the one function that maps
an HTTP status or task state code to its exception class."""

from __future__ import annotations

from .states import StateClass, classify_state, state_meaning, status_meaning

NO_STATE = object()  # "the response carried no state to judge" (a create), unlike a state that is missing


class PicWishError(Exception):
    """Root of every error this package raises. Never carries the API key."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        state: object = None,
        task_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.state = state
        self.task_id = task_id
        self.operation = operation

    @property
    def meaning(self) -> str:
        """The documented meaning of the state code, or of the HTTP status."""
        if self.state is not None:
            return state_meaning(self.state)
        if self.status is not None:
            return status_meaning(self.status)
        return self.message

    def to_record(self) -> dict:
        """A JSON-safe description, fit for a failure record."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "state": self.state,
            "meaning": self.meaning,
            "task_id": self.task_id,
            "operation": self.operation,
            "param": getattr(self, "param", None),
        }

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.state is not None:
            parts.append(f"state={self.state}")
        if self.task_id:
            parts.append(f"task_id={self.task_id}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, task_id={self.task_id!r})"


class InvalidRequestError(PicWishError):
    """400: the API rejected a parameter."""

    def __init__(self, message: str, *, param: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.param = param


class ValidationError(InvalidRequestError):
    """Caught locally before anything was sent, so no credit was spent. Names the parameter and the rule."""

    def __init__(self, param: str, rule: str, *, operation: str | None = None) -> None:
        super().__init__(f"{param}: {rule}", param=param, operation=operation)
        self.rule = rule


class AuthenticationError(PicWishError):
    """401: the key is missing, wrong, or the service is not enabled for it."""


class NotFoundError(PicWishError):
    """404: unknown path or task id."""


class PayloadTooLargeError(PicWishError):
    """413: an upload over the operation's size limit."""


class RateLimitError(PicWishError):
    """429: over the QPS limit. Nothing was created, so retrying is always safe."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class APIServerError(PicWishError):
    """5xx: the server failed. On a create, a task may or may not have been made."""


class APIConnectionError(PicWishError):
    """The network failed. `request_sent` says whether the server may have received the request."""

    def __init__(self, message: str, *, request_sent: bool, **kw) -> None:
        super().__init__(message, **kw)
        self.request_sent = request_sent


class UnexpectedResponseError(PicWishError):
    """The answer did not have the documented shape (bad JSON, missing fields, undocumented status)."""


class IncompleteResultError(UnexpectedResponseError):
    """The task reported done (state 1) but the answer lacks the operation's outputs: not a result, and asking
    again is not expected to change that."""


class TaskFailedError(PicWishError):
    """The task ended in a failed state (< 0); `meaning` is the documented meaning of the code."""


class UnknownStateError(PicWishError):
    """The task reported a state that is not documented (7, -18, null, "1", missing)."""


class WaitTimeoutError(PicWishError):
    """`PicWishClient.wait()` reached its deadline with the task still processing; `state` is the last one seen.
    The task is paid for and may still finish: poll it again, or wait longer."""


class ResultDownloadError(PicWishError):
    """A result could not be fetched (refused by policy, too large, timed out, bad status)."""


class ResultExpiredError(ResultDownloadError):
    """The result link no longer serves the result (they live about one hour)."""


_STATUS_CLASSES: dict[int, type[PicWishError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_for(
    *,
    status: int | None = None,
    state: object = NO_STATE,
    message: str | None = None,
    task_id: str | None = None,
    operation: str | None = None,
    retry_after: float | None = None,
) -> PicWishError | None:
    """Map an envelope's status (HTTP or body) or a task state to the exception to raise; None means success.

    A non-200 status wins over the state: the state of a rejected request means nothing.
    """
    kw = {"task_id": task_id, "operation": operation}
    if status is not None and status != 200:
        cls = _STATUS_CLASSES.get(status)
        if cls is None:
            cls = APIServerError if status >= 500 else UnexpectedResponseError
        text = message or status_meaning(status)
        if cls is RateLimitError:
            return RateLimitError(text, status=status, retry_after=retry_after, **kw)
        return cls(text, status=status, **kw)
    if state is NO_STATE:
        return None
    kind = classify_state(state)
    if kind is StateClass.FAILED:
        text = state_meaning(state)
        if message and message.lower() != "success":
            text = f"{text} ({message})"
        return TaskFailedError(text, status=status, state=state, **kw)
    if kind is StateClass.UNKNOWN:
        return UnknownStateError(f"undocumented task state {state!r}", status=status, state=state, **kw)
    return None
