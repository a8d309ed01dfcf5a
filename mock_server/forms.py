"""Parsing and checking a create request's multipart form, as the API does it: independently of the client's own
validation (the client is tested against this), but from the same catalog of documented parameters."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from picwish_visual.catalog import MAX_SIDE, MAX_URL_LENGTH, SIZE_RANGE, URL_CHARACTERS, Operation

from .exceptions import BadRequest, PayloadTooLarge


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


Source = Upload | str  # a file part, or a URL to download


@dataclass
class CreateRequest:
    operation: Operation
    sync: bool
    options: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)

    @property
    def source_name(self) -> str:
        """The image's file name (or the URL's last path segment): what scenario rules match on."""
        image = self.sources.get("image")
        if isinstance(image, Upload):
            return image.filename
        if isinstance(image, str):
            return posixpath.basename(urlsplit(image).path)
        return ""

    def describe(self) -> dict[str, Any]:
        """For the journal: every field, files reduced to name, size and digest."""
        described: dict[str, Any] = {"sync": int(self.sync), **self.options}
        for slot, source in self.sources.items():
            if isinstance(source, Upload):
                described[f"{slot}_file"] = {
                    "filename": source.filename,
                    "bytes": len(source.data),
                    "sha256": hashlib.sha256(source.data).hexdigest(),
                }
            else:
                described[f"{slot}_url"] = source
        return described


def _present(value: str | None) -> bool:
    return value is not None and value != ""


def _check_each_field_once(op: Operation, form, files) -> None:
    """A documented field sent twice, or sent with no value, is a mistake: which of two values, or whether an
    empty one means "default", would be a guess."""
    fields = {"sync", *(p.name for p in op.params), *(s.url_field for s in op.slots), *(s.file_field for s in op.slots)}
    for name in sorted(fields):
        values = [*form.getlist(name), *files.getlist(name)]
        if len(values) > 1:
            raise BadRequest(name, f"must be given at most once; got {len(values)} values")
        if name in form and form[name] == "":
            raise BadRequest(name, "must not be empty; leave the field out to use the default")


def parse_create(op: Operation, form, files) -> CreateRequest:
    """`form` and `files` are werkzeug MultiDicts. Raises BadRequest (400) or PayloadTooLarge (413)."""
    _check_each_field_once(op, form, files)
    sync_raw = form.get("sync", "0").strip()
    if sync_raw not in ("0", "1"):
        raise BadRequest("sync", f"must be 0 or 1; got {sync_raw!r}")
    request = CreateRequest(op, sync_raw == "1", {})
    for param in op.params:
        raw = form.get(param.name)
        if _present(raw):
            request.options[param.name] = _parse_param(param, raw.strip())
    for slot in op.slots:
        upload = files.get(slot.file_field)
        has_file = upload is not None
        url = form.get(slot.url_field)
        alternatives = [a for a in slot.alternatives if a in request.options]
        given = [name for name, ok in ((slot.url_field, _present(url)), (slot.file_field, bool(has_file))) if ok]
        if len(given) + len(alternatives) > 1 and not slot.file_wins:
            names = " / ".join([slot.url_field, slot.file_field, *slot.alternatives])
            raise BadRequest(given[0] if given else alternatives[0], f"only one of {names} may be given")
        if _present(url):  # checked even where the file wins: a malformed field is a mistake either way
            _check_url(slot.url_field, url)
        if has_file:
            data = upload.read()
            if len(data) > op.max_bytes:
                raise PayloadTooLarge(
                    f"{slot.file_field}: {len(data)} bytes exceeds the {op.max_bytes // (1024 * 1024)} MB limit"
                )
            if not data:
                raise BadRequest(slot.file_field, "the uploaded file is empty")
            request.sources[slot.name] = Upload(upload.filename or slot.file_field, data)
        elif _present(url):
            request.sources[slot.name] = url
        elif slot.required and not alternatives:
            names = " / ".join([slot.url_field, slot.file_field, *slot.alternatives])
            raise BadRequest(slot.file_field, f"one of {names} is required")
    _check_cross_rules(op, request)
    return request


def _check_url(name: str, url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(name, f"must be at most {MAX_URL_LENGTH} characters")
    if not re.fullmatch(URL_CHARACTERS, url):
        raise BadRequest(name, "must be a URL of RFC 3986 characters (percent-encode the others)")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadRequest(name, "must be an http(s) URL with a valid host") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(name, "must be an http(s) URL")


def _parse_param(param, raw: str) -> Any:
    if param.kind == "int":
        # ASCII digits only (the API promises no other numerals), and few enough to be a number at all.
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise BadRequest(param.name, f"must be an integer; got {_shown(raw)}")
        value: Any = int(raw)
    elif param.kind == "json":
        return _parse_rectangles(raw, param.name)
    else:
        value = raw
    if param.choices is not None and value not in param.choices:
        raise BadRequest(param.name, f"must be one of {', '.join(map(str, param.choices))}; got {raw!r}")
    if param.minimum is not None and not param.minimum <= value <= param.maximum:
        raise BadRequest(param.name, f"must be between {param.minimum} and {param.maximum}; got {raw}")
    if param.pattern is not None:
        match = re.fullmatch(param.pattern, value)
        if not match or (
            param.name == "size" and not all(SIZE_RANGE[0] <= int(g) <= SIZE_RANGE[1] for g in match.groups())
        ):
            raise BadRequest(param.name, f"{param.rule}; got {raw!r}")
    return value


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}… ({len(raw)} characters)"


def _parse_rectangles(raw: str, name: str) -> list[dict[str, int]]:
    try:
        rects = json.loads(raw)
    except (ValueError, RecursionError):  # also numbers past the int conversion limit, nesting past the parser's
        raise BadRequest(name, "must be a JSON array of {x, y, width, height}") from None
    if not isinstance(rects, list) or not 1 <= len(rects) <= 50:
        raise BadRequest(name, "must be a JSON array of 1 to 50 rectangles")
    for rect in rects:
        if not isinstance(rect, dict) or not all(
            isinstance(rect.get(k), int) and not isinstance(rect.get(k), bool) for k in ("x", "y", "width", "height")
        ):
            raise BadRequest(name, "each rectangle needs integer x, y, width and height")
        if rect["x"] < 0 or rect["y"] < 0 or rect["width"] <= 0 or rect["height"] <= 0:
            raise BadRequest(name, "x and y must be >= 0, width and height > 0")
        if max(rect[k] for k in ("x", "y", "width", "height")) > MAX_SIDE:
            raise BadRequest(name, f"x, y, width and height must be at most {MAX_SIDE} (the largest image side)")
    return rects


def _check_cross_rules(op: Operation, request: CreateRequest) -> None:
    effective = {**op.defaults(), **request.options, "sync": int(request.sync)}
    for name, value in request.options.items():
        param = op.param(name)
        if param.requires_for is not None and value not in param.requires_for:
            continue
        for other, allowed in param.requires.items():
            if effective.get(other) not in allowed:
                raise BadRequest(name, f"only allowed with {other}={'/'.join(map(str, allowed))}")
