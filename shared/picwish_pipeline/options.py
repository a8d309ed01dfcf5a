"""Options of a job: S3 user metadata named like the API's parameters, over per-operation deploy-time defaults."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from picwish_visual.catalog import Operation
from picwish_visual.errors import ValidationError
from picwish_visual.validation import normalize_options


def parse_defaults(text: str | None) -> dict[str, dict[str, Any]]:
    """`{"idphoto": {"format": "jpg"}, ...}` from the OperationDefaults parameter; empty means none."""
    if not text or not text.strip():
        return {}
    value = json.loads(text)
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError("operation defaults must be a JSON object of objects keyed by operation")
    return value


def options_from_metadata(
    op: Operation, metadata: Mapping[str, str], defaults: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(options normalized by the catalog, metadata keys that name no parameter of this operation).

    Metadata wins over defaults; `-` stands for `_` because some S3 clients rewrite underscores.
    `sync` is not an option here: the pipeline is always asynchronous.
    """
    names = {p.name for p in op.params}
    merged: dict[str, Any] = dict((defaults or {}).get(op.name, {}))
    ignored: list[str] = []
    for raw_key, value in metadata.items():
        name = raw_key.lower().replace("-", "_")
        if name in names:
            merged[name] = value
        else:
            ignored.append(raw_key)
    try:
        return normalize_options(op, merged), sorted(ignored)
    except ValidationError as exc:
        exc.operation = op.name
        raise
