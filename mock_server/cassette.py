"""Record and replay of the real API (WireMock's record/playback, for an asynchronous API). `--record DIR --upstream
URL`: each /api/ request is sent on to the API as it came (the caller's key included) and the exchange is written
to DIR/cassette.jsonl — when it was sent on and answered (seconds since the session started), the request's path
and form fields, the answer's status, headers and body — with the key never written and every URL's query string
(presigned links) redacted. `--replay DIR`: the same requests answered from the cassette, each replayed task on its
recorded clock: a create gets the next recorded create of its operation, and a poll the last answer recorded for
that task at or before the time since its replayed create (a task's clock starts when its create was answered:
the task exists from then on; a poll's moment is when it was sent on: the API reads the task's state then)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, request

CASSETTE = "cassette.jsonl"
REDACTED = "redacted"
KEPT_HEADERS = ("Content-Type", "Retry-After", "X-Task-Id")
_URL_QUERY = re.compile(r"(https?://[^\s\"?]+)\?[^\s\"]*")
_TASK_PATH = re.compile(r"^/api/tasks/visual/(?P<operation>[a-z-]+)(?:/(?P<task>[^/]+))?$")


def redact(value: Any) -> Any:
    """`value` with every URL's query string replaced: presigned links carry credentials."""
    if isinstance(value, str):
        return _URL_QUERY.sub(rf"\1?{REDACTED}", value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def recorder(directory: Path, upstream: str, clock: Callable[[], float] = time.monotonic) -> Flask:
    """A proxy to `upstream` that writes each exchange to the cassette in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path, started, lock = directory / CASSETTE, clock(), threading.Lock()
    app = Flask(__name__)
    session = requests.Session()

    @app.route("/api/<path:rest>", methods=["GET", "POST"])
    def forward(rest: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("x-api-key", "prefer")}
        files = {name: (f.filename, f.stream.read(), f.mimetype) for name, f in request.files.items()}
        sent_at = clock() - started
        answer = session.request(
            request.method,
            f"{upstream.rstrip('/')}/api/{rest}",
            headers=headers,
            data=request.form,
            files=files or None,
            timeout=200,
        )
        exchange = {
            "sent": round(sent_at, 3),
            "answered": round(clock() - started, 3),
            "method": request.method,
            "path": f"/api/{rest}",
            "fields": redact(dict(request.form)),
            "files": sorted(files),
            "status": answer.status_code,
            "headers": {k: answer.headers[k] for k in KEPT_HEADERS if k in answer.headers},
            "body": redact(_body(answer)),
        }
        with lock, path.open("a") as cassette:
            cassette.write(json.dumps(exchange) + "\n")
        kept = {k: v for k, v in answer.headers.items() if k in KEPT_HEADERS}
        return Response(answer.content, answer.status_code, kept)

    return app


def _body(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return {"text": answer.text[:2000]}


class Cassette:
    """A recorded session: each operation's creates in order, each recorded task's polls by time since its create."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self.creates: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self.polls: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        created_at: dict[str, float] = {}
        for exchange in exchanges:
            found = _TASK_PATH.match(exchange["path"])
            if found is None:
                continue
            if exchange["method"] == "POST":
                self.creates[found["operation"]].append(exchange)
                task = _task_id(exchange["body"])
                if task:
                    created_at[task] = exchange["answered"]
            elif found["task"]:
                since = exchange["sent"] - created_at.get(found["task"], 0.0)
                self.polls[found["task"]].append((since, exchange))

    @classmethod
    def load(cls, directory: Path) -> Cassette:
        lines = (directory / CASSETTE).read_text().splitlines()
        return cls([json.loads(line) for line in lines if line.strip()])


def _task_id(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    return data.get("task_id") if isinstance(data, dict) else None


def player(directory: Path, clock: Callable[[], float] = time.monotonic) -> Flask:
    """The API answered from the cassette in `directory`."""
    cassette, lock = Cassette.load(directory), threading.Lock()
    replayed: dict[str, float] = {}  # task id → when its create was replayed
    app = Flask(__name__)

    @app.post("/api/tasks/visual/<operation>")
    def create(operation: str) -> Response:
        with lock:
            if not cassette.creates[operation]:
                return _missing(f"the cassette holds no more creates of {operation}")
            exchange = cassette.creates[operation].popleft()
            task = _task_id(exchange["body"])
            if task:
                replayed[task] = clock()
        return _answer(exchange)

    @app.get("/api/tasks/visual/<operation>/<task_id>")
    def poll(operation: str, task_id: str) -> Response:
        recorded = cassette.polls.get(task_id)
        if task_id not in replayed or not recorded:
            return _missing(f"the cassette holds no task {task_id} of {operation}")
        elapsed = clock() - replayed[task_id]
        seen = [exchange for since, exchange in recorded if since <= elapsed] or [recorded[0][1]]
        return _answer(seen[-1])

    return app


def _answer(exchange: dict[str, Any]) -> Response:
    body = exchange["body"]
    text = body["text"] if isinstance(body, dict) and set(body) == {"text"} else json.dumps(body)
    return Response(text, exchange["status"], exchange["headers"])


def _missing(message: str) -> Response:
    body = {"status": 404, "message": f"replay: {message}", "data": None}
    return Response(json.dumps(body), 404, {"Content-Type": "application/json"})


def shape(value: Any) -> Any:
    """A JSON value's shape: objects field by field, a list by its first item, scalars by type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string"}.get(type(value), type(value).__name__)


def shape_differences(recorded: Any, answered: Any, path: str = "$") -> list[str]:
    """Where `answered` does not have the shape of `recorded`: a field the recording has that the answer lacks,
    or holds with another type. Fields only the answer has are allowed (a mock may say more)."""
    want, got = shape(recorded), shape(answered)
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: an object in the recording, {_kind(got)} here"]
        found = []
        for key, item in recorded.items():
            if key not in answered:
                found.append(f"{path}.{key}: missing ({_kind(want[key])} in the recording)")
            else:
                found.extend(shape_differences(item, answered[key], f"{path}.{key}"))
        return found
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: a list in the recording, {_kind(got)} here"]
        return shape_differences(recorded[0], answered[0], f"{path}[0]") if recorded and answered else []
    return [] if want == got or "null" in (want, got) else [f"{path}: {want} in the recording, {got} here"]


def _kind(found: Any) -> str:
    return "an object" if isinstance(found, dict) else "a list" if isinstance(found, list) else str(found)
