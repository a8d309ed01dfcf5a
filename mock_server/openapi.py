"""Builds the OpenAPI 3 document of the API from the catalog; `python -m mock_server.openapi` rewrites the
checked-in `openapi.json` (a test keeps the two equal)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from picwish_visual.catalog import MAX_URL_LENGTH, OPERATIONS, TASK_ID_PATTERN, URL_CHARACTERS, Operation, Param
from picwish_visual.states import HTTP_STATUSES, TASK_STATES

SPEC_PATH = Path(__file__).with_name("openapi.json")
# http(s)://host… in RFC 3986 characters: what the mock's form parser accepts for a *_url field.
_HOST_CHARACTERS = r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+"
URL_FIELD_PATTERN = f"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST_CHARACTERS}([/?#]{URL_CHARACTERS[:-1]}*)?$"


def _param_schema(param: Param) -> dict[str, Any]:
    if param.kind == "json":
        return {"type": "string", "description": param.description}
    schema: dict[str, Any] = {"type": "integer" if param.kind == "int" else "string", "description": param.description}
    if param.choices is not None:
        schema["enum"] = list(param.choices)
    if param.minimum is not None:
        schema["minimum"], schema["maximum"] = param.minimum, param.maximum
    if param.pattern is not None:
        schema["pattern"] = f"^{param.pattern}$"
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _request_schema(op: Operation) -> dict[str, Any]:
    properties: dict[str, Any] = {"sync": {"type": "integer", "enum": [0, 1], "default": 0}}
    for slot in op.slots:
        properties[slot.url_field] = {"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": URL_FIELD_PATTERN}
        properties[slot.file_field] = {"type": "string", "format": "binary"}
    for param in op.params:
        properties[param.name] = _param_schema(param)
    return {"type": "object", "properties": properties}


def _task_data_schema(op: Operation) -> dict[str, Any]:
    timestamp = {"type": "string", "pattern": "^[0-9]+$", "description": "Unix time"}
    properties: dict[str, Any] = {
        "task_id": {"type": "string"},
        "created_at": timestamp,
        "processed_at": timestamp,
        "completed_at": timestamp,
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "state": {"type": "integer", "enum": sorted(TASK_STATES)},
    }
    if "image" in op.result_fields:
        properties["image"] = {"type": "string", "description": "URL (valid 1 hour) or base64"}
    if op.name == "retouching-collection":
        properties.update(
            return_type={"type": "integer"},
            type={"type": "integer"},
            time_elapsed={"type": "string"},
            state_detail={"type": "string"},
        )
    if op.name == "clothing-segmentation":
        properties.update(
            class_masks={"type": "object", "additionalProperties": {"type": "string"}},
            clothes_masks={"type": "string"},
            output_type={"type": "integer"},
        )
    return {"type": "object", "required": ["task_id"], "properties": properties}


def _envelope(data: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "message"],
        "properties": {
            "status": {"type": "integer"},
            "message": {"type": "string"},
            "data": data if data is not None else {},
        },
    }


def _errors() -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/Error{code}"} for code in HTTP_STATUSES if code != 200}


def build_spec() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": _envelope(None)}
    for op in OPERATIONS.values():
        key = op.name.replace("-", "_")
        schemas[f"{key}_task"] = _task_data_schema(op)
        paths[op.path] = {"post": _create_operation(op, key)}
        paths[f"{op.path}/{{task_id}}"] = {"get": _query_operation(op, key)}
    responses = {
        f"Error{code}": {
            "description": meaning,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, meaning in HTTP_STATUSES.items()
        if code != 200
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "PicWish visual API (as served by the offline mock)",
            "version": "1.0.0",
            "description": "Five asynchronous image operations. Task states: "
            + "; ".join(f"{k} {v}" for k, v in TASK_STATES.items()),
        },
        "servers": [{"url": "https://techhk.aoscdn.com"}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"}},
            "schemas": schemas,
            "responses": responses,
        },
    }


def _create_operation(op: Operation, key: str) -> dict[str, Any]:
    return {
        "operationId": f"create_{key}",
        "summary": f"Create a {op.title} task",
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _request_schema(op)}},
        },
        "responses": {
            "200": {
                "description": "Task created (sync=0: task_id only; sync=1: the finished task)",
                "content": {
                    "application/json": {"schema": _envelope({"$ref": f"#/components/schemas/{key}_task"})},
                    **(
                        {"image/*": {"schema": {"type": "string", "format": "binary"}}}
                        if op.name == "correction"
                        else {}
                    ),
                },
            },
            **_errors(),
        },
    }


def _query_operation(op: Operation, key: str) -> dict[str, Any]:
    return {
        "operationId": f"query_{key}",
        "summary": f"Query a {op.title} task",
        "parameters": [
            {
                "name": "task_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^{TASK_ID_PATTERN}$"},
            }
        ],
        "responses": {
            "200": {
                "description": "The task",
                "content": {"application/json": {"schema": _envelope({"$ref": f"#/components/schemas/{key}_task"})}},
            },
            **_errors(),
        },
    }


def render() -> str:
    return json.dumps(build_spec(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    SPEC_PATH.write_text(render())
    print(f"wrote {SPEC_PATH}")
