"""The HTTP client of the API: create and query tasks, with validation, timeouts, safe retries and typed results."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from .catalog import TASK_ID_PATTERN, Operation
from .config import ClientSettings
from .errors import (
    NO_STATE,
    APIConnectionError,
    PicWishError,
    RateLimitError,
    UnexpectedResponseError,
    ValidationError,
    WaitTimeoutError,
    error_for,
)
from .images import CONTENT_TYPES, EXTENSIONS, sniff_format
from .results import Output, TaskResult
from .retry import Backoff, parse_retry_after, should_retry
from .states import MAX_PROCESSING_S
from .validation import ImageSource, known_operation, upload_bytes, validate_request

USER_AGENT = "picwish-pipeline/1.0"


class PicWishClient:
    """One client per API key. `max_retries=0` hands every retry decision to the caller (the state machine)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        settings: ClientSettings | None = None,
        session: requests.Session | None = None,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        validate: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self._api_key = api_key
        # An explicit base URL wins over the settings' and the environment's (PICWISH_BASE_URL).
        self.settings = settings or ClientSettings.from_env()
        if base_url:
            self.settings = replace(self.settings, base_url=base_url)
        self.session = session or requests.Session()
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock = clock
        self.validate = validate
        self.calls = 0  # HTTP requests sent, retries included (every one spends QPS budget)

    def __repr__(self) -> str:  # the key never appears in a repr
        return f"PicWishClient(base_url={self.settings.base_url!r})"

    # -- public API -------------------------------------------------------------------------------------------

    def create_task(
        self,
        operation: str,
        image: ImageSource,
        options: Mapping[str, Any] | None = None,
        *,
        sync: bool = False,
        mask: ImageSource | None = None,
        retain_mask: ImageSource | None = None,
    ) -> TaskResult:
        """POST a task. Async: the result holds only `task_id`. Sync: the finished result (or TaskFailedError)."""
        op = known_operation(operation)
        if options is not None and not isinstance(options, Mapping):
            rule = f"must be a mapping of parameter names to values; got {type(options).__name__}"
            raise ValidationError("options", rule, operation=op.name)
        named = {"image": image, "mask": mask, "retain_mask": retain_mask}
        inputs: dict[str, ImageSource] = {k: v for k, v in named.items() if v is not None}
        if self.validate:
            options = validate_request(op, inputs, options, sync=sync)
        parts = build_form(op, inputs, options or {}, sync=sync)
        response = self._send("POST", op, op.path, is_create=True, files=parts)
        return self._parse(op, response, expect_state=sync)

    def get_task(self, operation: str, task_id: str) -> TaskResult:
        """GET a task's state. Raises TaskFailedError for a failed state and UnknownStateError for an odd one."""
        op = known_operation(operation)
        check_task_id(task_id, operation=op.name)
        response = self._send("GET", op, f"{op.path}/{task_id}", is_create=False, task_id=task_id)
        return self._parse(op, response, expect_state=True, task_id=task_id)

    def wait(self, operation: str, task_id: str, *, deadline_s: float = MAX_PROCESSING_S) -> TaskResult:
        """Poll the task until it is done, at the operation's documented interval, waiting at least as long as a
        429's Retry-After asks; the done result, or TaskFailedError / UnknownStateError as `get_task` raises them,
        or WaitTimeoutError once `deadline_s` (default: the API's 180 s processing limit) has passed."""
        op = known_operation(operation)
        give_up = self._clock() + deadline_s
        state: Any = None
        while True:
            pause = float(op.poll_interval_s)
            try:
                result = self.get_task(op.name, task_id)
            except RateLimitError as exc:
                pause = max(pause, exc.retry_after or 0.0)
            else:
                if result.is_done:
                    return result
                state = result.state
            left = give_up - self._clock()
            if left <= 0 or pause > left:
                message = f"the task was still processing after {deadline_s:g} s"
                raise WaitTimeoutError(message, state=state, task_id=task_id, operation=op.name)
            self._sleep(pause)

    # -- internals --------------------------------------------------------------------------------------------

    def _send(self, method: str, op: Operation, path: str, *, is_create: bool, task_id: str | None = None, **kw):
        url = self.settings.base_url.rstrip("/") + path
        headers = {"X-API-KEY": self._api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        attempt = 0
        while True:
            self.calls += 1
            try:
                # Never follow a redirect: the key would go to whatever host it names (a 3xx is an unexpected answer).
                response = self.session.request(
                    method, url, headers=headers, timeout=timeout, allow_redirects=False, **kw
                )
                error = _envelope_error(op, response, task_id)
            except requests.RequestException as exc:
                response, error = None, _connection_error(exc, op, task_id)
            if error is None:
                return response
            if attempt >= self.max_retries or not should_retry(error, is_create=is_create):
                raise error
            self._sleep(self.backoff.delay(attempt, getattr(error, "retry_after", None)))
            attempt += 1

    def _parse(
        self, op: Operation, response: requests.Response, *, expect_state: bool, task_id: str | None = None
    ) -> TaskResult:
        if _is_binary_image(response):
            # correction's sync return_type=3: the body is the image itself.
            header_id = response.headers.get("X-Task-Id") or task_id or ""
            return TaskResult(
                op.name, header_id or "binary", state=1, progress=100, image=Output(data=response.content)
            )
        body = _json_body(response, op, task_id)
        data = body.get("data")
        result = TaskResult.from_data(op.name, data, task_id=task_id)
        if not expect_state:
            return result
        state = data.get("state", "<missing>") if isinstance(data, dict) else "<missing>"
        error = error_for(state=state, message=body.get("message"), task_id=result.task_id, operation=op.name)
        if error is not None:
            raise error
        return result


TASK_ID = re.compile(TASK_ID_PATTERN)


def check_task_id(task_id: Any, *, operation: str | None = None) -> None:
    """A task id goes into the URL's path: only characters that cannot change the request ("?", "#", "/", "..")."""
    if not isinstance(task_id, str):
        raise ValidationError("task_id", f"must be a string; got {type(task_id).__name__}", operation=operation)
    if len(task_id) > 128:
        raise ValidationError("task_id", f"must be at most 128 characters; got {len(task_id)}", operation=operation)
    if not TASK_ID.fullmatch(task_id):
        rule = f"must be letters, digits, '-' or '_' (1 to 128 of them); got {task_id!r}"
        raise ValidationError("task_id", rule, operation=operation)


def build_form(
    op: Operation, inputs: Mapping[str, ImageSource], options: Mapping[str, Any], *, sync: bool
) -> list[tuple[str, tuple[str | None, str | bytes, str | None]]]:
    """The multipart/form-data parts: plain fields, `<slot>_url` fields and `<slot>_file` uploads.

    Plain fields are parts too: without a file, requests would otherwise send form-urlencoded, which the docs
    do not offer.
    """
    parts: list[tuple[str, tuple[str | None, str | bytes, str | None]]] = [("sync", (None, "1" if sync else "0", None))]
    for name, value in options.items():
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, list) else str(value)
        parts.append((name, (None, text, None)))
    for slot in op.slots:
        source = inputs.get(slot.name)
        if isinstance(source, str):
            parts.append((slot.url_field, (None, source, None)))
        elif source is not None:
            data = upload_bytes(source)
            fmt = sniff_format(data) or ""
            filename = source[0] if isinstance(source, tuple) else f"{slot.name}.{EXTENSIONS.get(fmt, 'bin')}"
            parts.append((slot.file_field, (filename, data, CONTENT_TYPES.get(fmt, "application/octet-stream"))))
    return parts


def _is_binary_image(response: requests.Response) -> bool:
    return response.status_code == 200 and response.headers.get("Content-Type", "").startswith("image/")


def _json_body(response: requests.Response, op: Operation, task_id: str | None) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise UnexpectedResponseError(
            f"HTTP {response.status_code}: the body is not JSON",
            status=response.status_code,
            task_id=task_id,
            operation=op.name,
        ) from None
    if not isinstance(body, dict):
        raise UnexpectedResponseError("the body is not a JSON object", task_id=task_id, operation=op.name)
    return body


def _envelope_error(op: Operation, response: requests.Response, task_id: str | None) -> PicWishError | None:
    """The error a response carries, judging the HTTP status and the body's `status` together.

    The body's status is authoritative: the real API is reported to send errors such as 429 inside an HTTP 200.
    """
    if _is_binary_image(response):
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    body_status = body.get("status") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if isinstance(body_status, int) and not isinstance(body_status, bool) and body_status != 200:
        status = body_status
    elif response.status_code != 200:
        status = response.status_code
    elif not isinstance(body, dict):
        return UnexpectedResponseError(
            "HTTP 200 with a body that is not a JSON object", task_id=task_id, operation=op.name
        )
    elif body_status != 200:
        return UnexpectedResponseError(
            f"envelope status {body_status!r} is not a number", task_id=task_id, operation=op.name
        )
    else:
        return None
    return error_for(
        status=status,
        state=NO_STATE,
        message=message if isinstance(message, str) else None,
        task_id=task_id,
        operation=op.name,
        retry_after=retry_after,
    )


def _connection_error(exc: requests.RequestException, op: Operation, task_id: str | None) -> APIConnectionError:
    """Whether the server may have seen the request decides whether a create may be repeated."""
    # urllib3 wraps the cause: a connection that never opened (refused, or a name that did not resolve —
    # NameResolutionError is a NewConnectionError) sent nothing.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    never_sent = isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)
    )
    return APIConnectionError(
        f"{type(exc).__name__} talking to the API", request_sent=not never_sent, task_id=task_id, operation=op.name
    )
