"""Local validation of a request against the catalog, before anything is sent (a rejected request costs no credit).

Every failure is a ValidationError whose message names the parameter and the rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .catalog import MAX_SIDE, MAX_URL_LENGTH, MB, SIZE_RANGE, URL_CHARACTERS, Operation, Param, get_operation
from .errors import ValidationError
from .images import ImageInfo, UnreadableImage, mask_coverage, read_info, sniff_format

# bytes (or (filename, bytes)) are uploaded as <slot>_file; a str is sent as <slot>_url
ImageSource = bytes | str | tuple[str, bytes]


def source_bytes(source: ImageSource) -> bytes | None:
    """The bytes of an upload source, None for a URL (check_source has judged its shape)."""
    return None if isinstance(source, str) else upload_bytes(source)


def upload_bytes(source: bytes | bytearray | tuple[str, bytes]) -> bytes:
    """The bytes of a file upload: the bytes themselves, or the second of a (filename, bytes) pair."""
    return bytes(source[1]) if isinstance(source, tuple) else bytes(source)


def validate_request(
    operation: str | Operation,
    inputs: Mapping[str, ImageSource | None],
    options: Mapping[str, Any] | None = None,
    *,
    sync: bool = False,
) -> dict[str, Any]:
    """Check a whole request; return the options normalized to their documented types (ints as int)."""
    op = operation if isinstance(operation, Operation) else known_operation(operation)
    options = dict(options or {})
    normalized = normalize_options(op, options)
    _check_requirements(op, normalized, sync)
    infos = _check_inputs(op, {k: v for k, v in inputs.items() if v is not None}, normalized)
    _check_rectangles(op, normalized, infos.get("image"))
    return normalized


def known_operation(name: str) -> Operation:
    """The catalog's operation of that name; an unknown one is a ValidationError naming the parameter."""
    try:
        return get_operation(name)
    except KeyError as exc:
        raise ValidationError("operation", exc.args[0]) from None


def normalize_options(op: Operation, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check each option on its own (known name, type, range, choices, pattern) and return typed values."""
    slot_fields = {f for s in op.slots for f in (s.file_field, s.url_field)}
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in slot_fields:
            raise ValidationError(name, "images and masks are passed as inputs, not as options", operation=op.name)
        if name == "sync":
            raise ValidationError(name, "sync is an argument of the call, not an option", operation=op.name)
        try:
            param = op.param(name)
        except KeyError:
            known = ", ".join(p.name for p in op.params)
            raise ValidationError(name, f"unknown parameter for {op.name}; known: {known}", operation=op.name) from None
        out[name] = _normalize_value(op, param, value)
    return out


def _normalize_value(op: Operation, param: Param, value: Any) -> Any:
    def fail(rule: str) -> ValidationError:
        return ValidationError(param.name, rule, operation=op.name)

    if param.kind == "int":
        number = _as_int(value)
        if number is None:
            raise fail(f"must be an integer; got {_shown(value)}")
        if param.choices is not None and number not in param.choices:
            raise fail(f"must be one of {', '.join(map(str, param.choices))}; got {_shown(number)}")
        if param.minimum is not None and param.maximum is not None and not param.minimum <= number <= param.maximum:
            raise fail(f"must be between {param.minimum} and {param.maximum}; got {_shown(number)}")
        return number
    if param.kind == "json":
        return _parse_rectangles(op, value)
    if not isinstance(value, str):
        raise fail(f"must be a string; got {_shown(value)}")
    if param.choices is not None and value not in param.choices:
        raise fail(f"must be one of {', '.join(map(str, param.choices))}; got {_shown(value)}")
    if param.pattern is not None:
        match = re.fullmatch(param.pattern, value)
        if not match:
            raise fail(f"{param.rule}; got {_shown(value)}")
        if param.name == "size":
            lo, hi = SIZE_RANGE
            if not all(lo <= int(side) <= hi for side in match.groups()):
                raise fail(f"{param.rule}; got {value!r}")
    return value


MAX_INT_DIGITS = 18  # far beyond any documented range, and short of Python's int/str conversion limit


def _as_int(value: Any) -> int | None:
    """An int, or a string of ASCII digits (the API promises no other numerals: `\\d` would take "١")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip(), flags=re.ASCII):
        return int(value.strip()) if len(value.strip().lstrip("-")) <= MAX_INT_DIGITS else None
    return None


def _shown(value: Any) -> str:
    """A value as an error message shows it: huge numbers by their length (they cannot even become text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {math.floor(math.log10(abs(value))) + 1} digits"
    if isinstance(value, str) and len(value) > 40:
        digits = value.strip().lstrip("-")
        if digits.isascii() and digits.isdigit():
            return f"a number of {len(digits)} digits"
        return f"{value[:40]!r}… ({len(value)} characters)"
    return repr(value)


def _check_requirements(op: Operation, options: dict[str, Any], sync: bool) -> None:
    """Cross-parameter rules (bg_color only with format=jpg; return_type 3 only with sync=1)."""
    effective = {**op.defaults(), **options, "sync": 1 if sync else 0}
    for name, value in options.items():
        param = op.param(name)
        if param.requires_for is not None and value not in param.requires_for:
            continue
        for other, allowed in param.requires.items():
            if effective.get(other) not in allowed:
                wanted = " or ".join(f"{other}={a}" for a in allowed)
                subject = f"value {value} is" if param.requires_for is not None else "is"
                raise ValidationError(name, f"{subject} only allowed with {wanted}", operation=op.name)


def _check_inputs(op: Operation, inputs: dict[str, ImageSource], options: dict[str, Any]) -> dict[str, ImageInfo]:
    known = {s.name for s in op.slots}
    for name in inputs:
        if name not in known:
            raise ValidationError(
                name, f"{op.name} takes no {name} input; it takes {', '.join(known)}", operation=op.name
            )
    infos: dict[str, ImageInfo] = {}
    for name, source in inputs.items():
        check_source(op.slot(name).file_field, source, operation=op.name)
    for slot in op.slots:
        given = inputs.get(slot.name)
        given_alternatives = [a for a in slot.alternatives if a in options]
        if given is None:
            if slot.required and not given_alternatives:
                either = " / ".join([slot.url_field, slot.file_field, *slot.alternatives])
                raise ValidationError(slot.file_field, f"one of {either} is required", operation=op.name)
            continue
        if given_alternatives:
            either = " / ".join([slot.url_field, slot.file_field, *slot.alternatives])
            raise ValidationError(given_alternatives[0], f"{either} are mutually exclusive", operation=op.name)
        if isinstance(given, str):
            check_url(slot.url_field, given, operation=op.name)
        else:
            infos[slot.name] = check_image_bytes(op, slot.file_field, upload_bytes(given))
    _check_same_dimensions(op, infos)
    mask = source_bytes(inputs["mask"]) if "mask" in inputs else None
    if op.max_mask_area is not None and mask is not None:
        coverage = mask_coverage(mask)
        if coverage > op.max_mask_area:
            raise ValidationError(
                "mask_file",
                f"the removal area (white) must cover at most {op.max_mask_area:.0%} of the image; "
                f"it covers {coverage:.1%}",
                operation=op.name,
            )
    return infos


def check_source(field: str, source: Any, *, operation: str | None = None) -> None:
    """bytes, a (filename, bytes) pair, or a URL string: nothing else can become a request."""
    pair = (
        isinstance(source, tuple)
        and len(source) == 2
        and isinstance(source[0], str)
        and isinstance(source[1], bytes | bytearray)
    )
    if not (pair or isinstance(source, bytes | bytearray | str)):
        shape = f"a tuple of {len(source)}" if isinstance(source, tuple) else type(source).__name__
        raise ValidationError(
            field, f"must be bytes, a (filename, bytes) pair or a URL; got {shape}", operation=operation
        )


def check_url(field: str, url: Any, *, operation: str | None = None) -> None:
    if not isinstance(url, str) or not url:
        raise ValidationError(field, "must be a non-empty URL", operation=operation)
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(
            field, f"must be at most {MAX_URL_LENGTH} characters; got {len(url)}", operation=operation
        )
    if not re.fullmatch(URL_CHARACTERS, url):
        raise ValidationError(
            field, "must be a URL of RFC 3986 characters (percent-encode the others)", operation=operation
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # a broken IPv6 literal
        raise ValidationError(field, "must be an http(s) URL with a valid host", operation=operation) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(field, f"must be an http(s) URL; got scheme {parts.scheme!r}", operation=operation)


def check_image_size(op: Operation, field: str, size: int) -> None:
    """The operation's byte limit, on a size known before the bytes are (an S3 HEAD, a Content-Length)."""
    if size <= 0:
        raise ValidationError(field, "must not be empty (0 bytes)", operation=op.name)
    if size > op.max_bytes:
        rule = f"must be at most {op.max_bytes // MB} MB ({op.max_bytes} bytes); got {size} bytes"
        raise ValidationError(field, rule, operation=op.name)


def check_image_bytes(op: Operation, field: str, data: bytes) -> ImageInfo:
    """Size, format (by magic bytes) and dimensions of one uploaded image."""

    def fail(rule: str) -> ValidationError:
        return ValidationError(field, rule, operation=op.name)

    check_image_size(op, field, len(data))
    fmt = sniff_format(data)
    if fmt is not None and fmt not in op.formats:
        raise fail(f"format {fmt} is not accepted; accepted: {', '.join(op.formats)}")
    try:
        info = read_info(data)
    except UnreadableImage as exc:
        raise fail(f"must be an image in one of the formats {', '.join(op.formats)}: {exc}") from None
    if info.width > MAX_SIDE or info.height > MAX_SIDE:
        raise fail(f"must be at most {MAX_SIDE}x{MAX_SIDE} pixels; got {info.width}x{info.height}")
    if info.width < 1 or info.height < 1:
        raise fail(f"must have at least one pixel; got {info.width}x{info.height}")
    return info


def _check_same_dimensions(op: Operation, infos: dict[str, ImageInfo]) -> None:
    image = infos.get("image")
    if not op.same_dimensions or image is None:
        return
    for name, info in infos.items():
        if name != "image" and (info.width, info.height) != (image.width, image.height):
            raise ValidationError(
                f"{name}_file",
                f"must have the same dimensions as the image ({image.width}x{image.height}); "
                f"got {info.width}x{info.height}",
                operation=op.name,
            )


_RECT_KEYS = ("x", "y", "width", "height")


def _parse_rectangles(op: Operation, value: Any) -> list[dict[str, int]]:
    def fail(rule: str) -> ValidationError:
        return ValidationError("rectangles", rule, operation=op.name)

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # nested too deep for the parser is malformed too
            raise fail('must be a JSON array like [{"x":0,"y":0,"width":100,"height":100}]') from None
    if not isinstance(value, list) or not value:
        raise fail("must be a non-empty JSON array of rectangles")
    if op.max_rectangles is not None and len(value) > op.max_rectangles:
        raise fail(f"must hold at most {op.max_rectangles} rectangles; got {len(value)}")
    rects = []
    for i, rect in enumerate(value):
        if not isinstance(rect, dict) or set(rect) != set(_RECT_KEYS):
            raise fail(f"rectangle {i} must be an object with exactly the keys x, y, width, height")
        if not all(isinstance(rect[k], int) and not isinstance(rect[k], bool) for k in _RECT_KEYS):
            raise fail(f"rectangle {i}: x, y, width and height must be integers")
        if rect["x"] < 0 or rect["y"] < 0 or rect["width"] < 1 or rect["height"] < 1:
            raise fail(f"rectangle {i}: x and y must be >= 0, width and height >= 1")
        rects.append({k: rect[k] for k in _RECT_KEYS})
    return rects


def _check_rectangles(op: Operation, options: dict[str, Any], image: ImageInfo | None) -> None:
    if "rectangles" not in options or image is None:
        return
    for i, rect in enumerate(options["rectangles"]):
        if rect["x"] + rect["width"] > image.width or rect["y"] + rect["height"] > image.height:
            raise ValidationError(
                "rectangles",
                f"rectangle {i} must lie inside the image ({image.width}x{image.height}); got {rect}",
                operation=op.name,
            )
