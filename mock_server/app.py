"""The Flask app factory and its routes. Routes only parse requests and serialize answers; the model decides."""

from __future__ import annotations

import json
import logging
import time
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from picwish_visual.catalog import OPERATIONS, Operation

from .config import MockConfig
from .exceptions import AdminError, MockAPIError, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized
from .forms import parse_create
from .models import MockBackend
from .progression import Task
from .responses import task_data
from .result_store import StoredResult
from .scenarios import Outcome, parse_prefer, prefer_status, rule_from_mapping

log = logging.getLogger(__package__ or "mock_server")
api = Blueprint("api", __name__)
admin = Blueprint("admin", __name__, url_prefix="/__mock__")

EXPIRED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired.</Message></Error>"
)
MISSING_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message></Error>"
)


def create_app(config: MockConfig | None = None, backend: MockBackend | None = None) -> Flask:
    config = config or MockConfig.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # above every documented limit; beyond it → 413
    app.extensions["picwish_mock"] = backend or MockBackend(config)
    app.register_blueprint(api)
    if config.admin:
        app.register_blueprint(admin)
    app.register_error_handler(MockAPIError, _api_error)
    app.register_error_handler(Truncated, _truncated)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def backend() -> MockBackend:
    return current_app.extensions["picwish_mock"]


# -- the envelope ------------------------------------------------------------------------------------------------


def envelope(status: int, message: str, data: Any = None, *, headers: dict | None = None) -> Response:
    """HTTP status equals the body's status, unless errors are configured to arrive inside an HTTP 200."""
    in_body = backend().config.errors_in_body or g.get("status_in_body", False)
    http_status = 200 if (status != 200 and in_body) else status
    response = jsonify({"status": status, "message": message, "data": data})
    response.status_code = http_status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    _journal(status)
    return response


def _journal(status: int) -> None:
    if not request.path.startswith("/api/"):
        return
    entry = {
        "method": request.method,
        "path": request.path,
        "operation": g.get("operation"),
        "key": _mask_key(request.headers.get("X-API-KEY")),
        "status": status,
        "task_id": g.get("task_id"),
        "prefer": request.headers.get("Prefer"),
        "rule": g.get("rule"),
        "chaos": g.get("chaos"),
        "counted_at": g.get("counted_at"),
    }
    if request.method == "POST" and g.get("fields") is not None:
        entry["fields"] = g.fields
    backend().record(entry)


def _mask_key(key: str | None) -> str | None:
    return None if key is None else (key[:4] + "…" if len(key) > 4 else "…")


def _truncated(_error: Exception) -> Response:
    _journal(200)
    return Response('{"status": 200, "message": "succ', 200, mimetype="application/json")


def _api_error(error: MockAPIError) -> Response:
    return envelope(error.status, error.message, headers=error.headers)


def _http_error(error: HTTPException) -> Response | tuple[Response, int]:
    if error.code == 413:
        return envelope(413, PayloadTooLarge().message)
    if error.code in (404, 405):
        return envelope(404, NotFound().message)
    if request.path.startswith("/__mock__/"):
        return jsonify({"error": error.description}), error.code or 400
    return envelope(400 if (error.code or 500) < 500 else 500, error.description or "Error.")


def _unexpected_error(error: Exception) -> Response:
    log.exception("unexpected error in the mock")  # the server log keeps the trace; the client gets the envelope
    return envelope(500, "Server-side exception. Please contact support.")


# -- the API -----------------------------------------------------------------------------------------------------


def _gate(operation: str) -> tuple[Operation, str]:
    """Unknown path → 404, bad key → 401, over QPS → 429, in that order."""
    op = OPERATIONS.get(operation)
    if op is None:
        raise NotFound()
    g.operation = op.name
    key = request.headers.get("X-API-KEY", "")
    if key not in backend().config.api_keys:
        raise Unauthorized()
    g.counted_at = backend().clock()  # when the QPS limit judged the call: its time in the rolling window
    wait = backend().limiter.acquire(key)
    if wait is not None:
        raise TooManyRequests(headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    _chaos()
    return op, key


class Truncated(Exception):
    """Chaos: the answer is cut off mid-body, as a dropped connection leaves it."""


def _chaos() -> None:
    fault = backend().draw_chaos()
    if fault is None:
        return
    g.chaos = fault
    if fault == "slow":
        time.sleep(backend().config.slow_s)
    elif fault == "500":
        raise MockAPIError(status=500)
    elif fault in ("429", "429-body"):
        g.status_in_body = fault == "429-body"
        raise TooManyRequests(headers={"Retry-After": "1"})
    elif fault == "truncate":
        raise Truncated()


@api.post("/api/tasks/visual/<operation>")
def create_task(operation: str) -> Response:
    op, key = _gate(operation)
    try:
        prefer = parse_prefer(request.headers.get("Prefer"))
    except AdminError as exc:
        raise MockAPIError(f"Prefer: {exc}", status=400) from None
    g.status_in_body = bool(prefer.status_in_body)
    parsed = parse_create(op, request.form, request.files)
    g.fields = parsed.describe()
    rule = backend().match_rule(op.name, parsed.source_name)
    g.rule = rule.id if rule else None
    outcome = (rule.outcome if rule else Outcome()).merged(prefer)
    g.status_in_body = bool(outcome.status_in_body)
    if outcome.create_status is not None and outcome.create_status != 200:
        raise _forced(outcome.create_status)
    task = backend().create_task(key, parsed, outcome)
    g.task_id = task.id
    if not parsed.sync:
        return envelope(200, "success", {"task_id": task.id})
    state, progress = _wait(task)
    stored = _first_result(task) if state == 1 and parsed.options.get("return_type") == 3 else None
    if stored is not None:
        _journal(200)
        return Response(stored.data, 200, {"Content-Type": stored.content_type, "X-Task-Id": task.id})
    return envelope(200, "success", _task_data(task, state, progress))


def _task_data(task: Task, state: Any, progress: int) -> dict[str, Any]:
    return task_data(task, state, progress, _base_url(), backend().results, backend().clock())


def _first_result(task: Task) -> StoredResult | None:
    """correction's sync return_type=3 answers with the image itself."""
    return backend().results.stored(task.outputs[0][1]) if task.outputs else None


def _wait(task: Task) -> tuple[Any, int]:
    """sync=1: hold the request until the task ends, as the real API does (bounded by the 180 s limit)."""
    deadline = time.monotonic() + backend().config.scaled(backend().config.sync_wait_cap_s)
    while True:
        state, progress = backend().observe(task, poll=True)
        if task.final_state is not None or time.monotonic() > deadline:
            return state, progress
        time.sleep(min(max(backend().seconds_left(task), 0.01), 0.5))


def _forced(status: int) -> MockAPIError:
    headers = {"Retry-After": "1"} if status == 429 else None
    return MockAPIError(status=status, headers=headers)


@api.get("/api/tasks/visual/<operation>/<task_id>")
def query_task(operation: str, task_id: str) -> Response:
    op, key = _gate(operation)
    g.task_id = task_id
    task = backend().get_task(key, task_id)
    if task.operation is not op:
        raise NotFound()
    g.status_in_body = bool(task.outcome.status_in_body)
    forced: int | str | None
    try:
        forced = prefer_status(request.headers.get("Prefer"))
    except AdminError as exc:
        raise MockAPIError(f"Prefer: {exc}", status=400) from None
    if forced is None:
        forced = backend().take_query_error(task)
    if forced == "reset":
        raise Truncated()
    if forced == "not-json":
        _journal(502)
        return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", 502, mimetype="text/html")
    if forced is not None and forced != 200:
        raise _forced(int(forced))
    state, progress = backend().observe(task, poll=True)
    return envelope(200, "success", _task_data(task, state, progress))


def _base_url() -> str:
    return backend().config.public_url or request.host_url


@api.get("/results/<token>/<filename>")
def result(token: str, filename: str) -> Response:
    stored = backend().results.fetch(token)
    if stored is None:
        known = backend().results.stored(token) is not None
        return Response(EXPIRED_XML if known else MISSING_XML, 403 if known else 404, mimetype="application/xml")
    return Response(stored.data, 200, {"Content-Type": stored.content_type})


@api.get("/openapi.json")
def openapi() -> Response:
    text = resources.files(__package__ or "mock_server").joinpath("openapi.json").read_text()
    return Response(text, 200, mimetype="application/json")


# -- the scenario API --------------------------------------------------------------------------------------------


def _admin_json() -> Any:
    try:
        return request.get_json(force=True)
    except Exception:
        raise AdminError("the body must be JSON") from None


@admin.errorhandler(AdminError)
def _admin_error(error: AdminError):
    return jsonify({"error": str(error)}), 400


@admin.post("/reset")
def reset():
    backend().reset()
    return jsonify({"reset": True})


@admin.get("/rules")
def list_rules():
    return jsonify({"rules": [r.to_dict() for r in backend().rules]})


@admin.post("/rules")
def add_rule():
    body = _admin_json()
    rules = body if isinstance(body, list) else [body]
    added = [backend().add_rule(rule_from_mapping(r, OPERATIONS)).to_dict() for r in rules]
    return jsonify({"rules": added}), 201


@admin.delete("/rules")
def clear_rules():
    backend().clear_rules()
    return jsonify({"rules": []})


@admin.get("/requests")
def journal():
    entries = list(backend().journal)
    for name in ("operation", "method", "task_id"):
        if request.args.get(name):
            entries = [e for e in entries if e.get(name) == request.args[name]]
    return jsonify({"requests": entries})


@admin.get("/credits")
def credits():
    return jsonify(backend().stats())


@admin.get("/tasks")
def task_times():
    return jsonify({"tasks": backend().task_times()})


@admin.route("/chaos", methods=["GET", "POST"])
def chaos():
    if request.method == "POST":
        body = _admin_json()
        if not isinstance(body, dict):
            raise AdminError("chaos: a JSON object of rates")
        seed = body.pop("seed", None)
        try:
            backend().set_chaos(body, seed)
        except (TypeError, ValueError) as exc:
            raise AdminError(str(exc)) from None
    return jsonify({"chaos": backend().chaos})


@admin.get("/config")
def show_config():
    config = backend().config
    return Response(
        json.dumps(
            {
                "qps": config.qps,
                "result_ttl_s": config.result_ttl_s,
                "time_scale": config.time_scale,
                "errors_in_body": config.errors_in_body,
                "processing_s": dict(config.processing_s),
                "keys": len(config.api_keys),
            }
        ),
        mimetype="application/json",
    )
