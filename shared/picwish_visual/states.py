"""The API's HTTP statuses and task state codes, with their documented meanings and how to classify them."""

from __future__ import annotations

from enum import StrEnum

# Verbatim from the "HTTP response status codes" table shared by all five operation docs.
HTTP_STATUSES: dict[int, str] = {
    200: "The request is successful.",
    400: "Wrong parameter passed by the client. Check whether a parameter is missing or has an incorrect value.",
    401: "Unauthorized API key. Check that X-API-KEY is correct and the service is enabled.",
    404: "The requested URL or resource does not exist. Check that the URL or task_id is correct.",
    413: "The uploaded file exceeds the allowed size. Refer to the supported image size.",
    429: "Request frequency exceeds the QPS limit (default QPS is 2). Slow down or contact us to raise your QPS.",
    500: "Server-side exception. Please contact support.",
}

# Verbatim from the "Task status codes (data.state)" table shared by all five operation docs.
TASK_STATES: dict[int, str] = {
    -17: "Processing failed because the prompt is invalid.",
    -16: "Processing failed because a third-party review detected prohibited content.",
    -15: "Processing failed due to insufficient resources.",
    -14: "Processing failed because the input image content does not meet the requirements.",
    -13: "Processing failed because the task was canceled due to an exception.",
    -11: "Processing failed because the result is empty.",
    -10: "Processing failed because internal review detected prohibited content.",
    -9: "Processing failed because the internal program failed during loop processing.",
    -8: "Processing timed out. The maximum processing time is 180 seconds.",
    -7: "Invalid image file (e.g. corrupted image or incorrect format).",
    -5: "The image_url image exceeds the size limit (30MB).",
    -3: "The server failed to download your file. Check that the source image URL is available.",
    -2: "Processing completed, but uploading the result to OSS failed.",
    -1: "Processing failed.",
    0: "Queued. The task is waiting in the queue.",
    1: "Completed. Processing succeeded.",
    2: "Preparing.",
    3: "Waiting.",
    4: "Processing in progress.",
    5: "Internally publishing the result.",
    6: "Processing. Internal loop processing is in progress.",
}

DONE = 1
MAX_PROCESSING_S = 180.0  # state -8: "The maximum processing time is 180 seconds." By then a task has ended.
FAILED_STATES: frozenset[int] = frozenset(code for code in TASK_STATES if code < 0)


class StateClass(StrEnum):
    DONE = "done"
    FAILED = "failed"
    PROCESSING = "processing"
    UNKNOWN = "unknown"


def parse_state(value: object) -> int | None:
    """Return the state as an int only when the API sent a documented integer code; anything else is None.

    A string "1", a bool, 7 or -18 are not trusted: treating them as a code could end a task as done or
    loop on it forever, so callers turn None into an "unknown state" failure.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value in TASK_STATES else None


def classify_state(value: object) -> StateClass:
    code = parse_state(value)
    if code is None:
        return StateClass.UNKNOWN
    if code == DONE:
        return StateClass.DONE
    if code in FAILED_STATES:
        return StateClass.FAILED
    return StateClass.PROCESSING


def state_meaning(value: object) -> str:
    code = parse_state(value)
    return TASK_STATES[code] if code is not None else f"Unknown task state {value!r}."


def status_meaning(status: int) -> str:
    return HTTP_STATUSES.get(status, f"Undocumented HTTP status {status}.")
