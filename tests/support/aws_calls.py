"""The AWS actions a function's code can call, read from the source: from the step its handler wraps, every call
it can reach inside the `picwish` and `picwish_pipeline` packages, each boto3 operation on the way mapped to its
IAM action."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "shared" / "picwish_visual", ROOT / "shared" / "picwish_pipeline")

# boto3 operation (method name) → the IAM actions it needs. Names are unique across the services this code uses.
# Reading an object that may be missing needs ListBucket too: without it S3 answers 403, not 404 (NoSuchKey).
ACTIONS = {
    "get_object": ("s3:GetObject", "s3:ListBucket"),
    "head_object": ("s3:GetObject", "s3:ListBucket"),  # HEAD is authorized as GetObject
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
    "generate_presigned_url": "s3:GetObject",  # the URL carries the signer's permission to GetObject
    # The steps that read (or presign) an object at a version — the one its event named, the one submit judged:
    # S3 authorizes a request that names a version as GetObjectVersion.
    "read_capped": "s3:GetObjectVersion",
    "_api_inputs": "s3:GetObjectVersion",
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "transact_write_items": "dynamodb:TransactWriteItems",
    "start_execution": "states:StartExecution",
    "describe_execution": "states:DescribeExecution",
    "get_secret_value": "secretsmanager:GetSecretValue",
    "get_api_key": "secretsmanager:GetSecretValue",  # through Powertools' SecretsProvider
    "api_key": "secretsmanager:GetSecretValue",  # Services.api_key: get_api_key, bound at cold start
}


def _definitions() -> dict[str, list[ast.AST]]:
    found: dict[str, list[ast.AST]] = {}
    for path in (p for package in PACKAGES for p in package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def _called_names(node: ast.AST) -> Iterator[str]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            func = inner.func
            if isinstance(func, ast.Name):
                yield func.id
            elif isinstance(func, ast.Attribute):
                yield func.attr
        # steps hand functions over as values (`call_in_slot(prepare=claim)`): a name passed is a name called
        if isinstance(inner, ast.keyword) and isinstance(inner.value, ast.Name):
            yield inner.value.id


def handler_step(function_dir: str) -> str:
    """The step a function's handler wraps: the first argument of `step_handler(...)` in its app.py."""
    tree = ast.parse((ROOT / "functions" / function_dir / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step_handler":
            return node.args[0].id
    raise LookupError(function_dir)


def actions_of(step: str) -> set[str]:
    definitions, seen, actions, todo = _definitions(), set(), set(), [step]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in ACTIONS:
            needed = ACTIONS[name]
            actions.update(needed if isinstance(needed, tuple) else (needed,))
        for definition in definitions.get(name, []):
            todo.extend(n for n in _called_names(definition) if n not in seen)
    return actions
