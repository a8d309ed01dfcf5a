"""Scenario control: what a task or a call will do, from the per-request `Prefer` header and persistent rules."""

from __future__ import annotations

import fnmatch
import itertools
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .exceptions import AdminError

# Script tokens beyond integers, so a test can make the API send what the docs never promise.
SPECIAL_STATES = {"null": None, "missing": "<missing>", '"1"': "1", "1.0": 1.0}
RESULT_DEFECTS = ("missing", "empty")  # a done task that leaves its outputs out, or sends them as ""


def parse_script(value: Any) -> list[Any]:
    """`0,2,4,-5` (or a JSON list) → states the task reports in turn; the last one stays."""
    tokens = value if isinstance(value, list) else str(value).replace("|", ",").split(",")
    script: list[Any] = []
    for token in tokens:
        text = str(token).strip() if not isinstance(token, int) else token
        if isinstance(text, int):
            script.append(text)
        elif text in SPECIAL_STATES:
            script.append(SPECIAL_STATES[text])
        else:
            try:
                script.append(int(text))
            except ValueError:
                raise AdminError(f'script: {token!r} is not a state (integers, null, missing, "1", 1.0)') from None
    if not script:
        raise AdminError("script: needs at least one state")
    return script


def parse_progress_points(value: Any) -> list[tuple[float, float]]:
    """`0.2:0|0.5:80|0.9:85` (or a JSON list of pairs) → points whose fractions rise in (0, 1] and whose percents
    never fall, within 0–99 (100 is only ever "done")."""
    pairs = value if isinstance(value, list) else [p.split(":") for p in str(value).replace(",", "|").split("|")]
    points: list[tuple[float, float]] = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(value)
        fraction, percent = float(pair[0]), float(pair[1])
        if not (0 < fraction <= 1 and 0 <= percent <= 99) or not (math.isfinite(fraction) and math.isfinite(percent)):
            raise ValueError(value)
        if points and (fraction <= points[-1][0] or percent < points[-1][1]):
            raise ValueError(value)
        points.append((fraction, percent))
    if not points:
        raise ValueError(value)
    return points


QUERY_FAULTS = ("reset", "not-json")


@dataclass
class Outcome:
    """Everything a scenario can force; None leaves the mock's normal behaviour."""

    state: int | None = None  # the final state
    create_status: int | None = None  # the create call answers this HTTP status
    query_status: int | None = None  # the task's polls answer this status...
    query_status_count: int = 1  # ...this many times, then normally
    # ... or, as many times, an answer no status describes: "reset" (the connection drops mid-body) or
    # "not-json" (an HTML error page from something in front of the API)
    query_fault: str | None = None
    processing: float | None = None  # seconds (before the time scale)
    script: list[Any] | None = None  # states reported in turn
    polls: int | None = None  # progression by polls instead of time: done after this many polls
    status_in_body: bool | None = None  # errors as HTTP 200 with the status in the body
    result_ttl: float | None = None  # seconds the result links live
    result: str | None = None  # "missing" / "empty": the done task's outputs are left out / sent as ""
    progress_curve: float | None = None  # progress reported as (fraction of the time)^curve; 1 (linear) by default
    # Progress as points (fraction of the time, percent) joined by straight lines, held after the last point:
    # plateaus, jumps and stalls a real API may show. Wins over progress_curve, and reports from state 0 on.
    progress_points: list[tuple[float, float]] | None = None

    def merged(self, other: Outcome) -> Outcome:
        """`other`'s settings win where it has any."""
        values = asdict(self)
        values.update({k: v for k, v in asdict(other).items() if v is not None and k != "query_status_count"})
        if other.query_status is not None or other.query_fault is not None:
            values["query_status_count"] = other.query_status_count
        return Outcome(**values)


_OUTCOME_FIELDS = {f.name for f in fields(Outcome)}


def outcome_from_mapping(data: dict[str, Any]) -> Outcome:
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _OUTCOME_FIELDS:
            raise AdminError(f"{name}: unknown outcome field; known: {', '.join(sorted(_OUTCOME_FIELDS))}")
        if value is None:
            continue
        try:
            if name == "script":
                values[name] = parse_script(value)
            elif name == "progress_points":
                values[name] = parse_progress_points(value)
            elif name in ("processing", "result_ttl", "progress_curve"):
                values[name] = float(value)
                if name == "progress_curve" and not 0.1 <= values[name] <= 10:
                    raise ValueError(value)
            elif name == "result":
                if value not in RESULT_DEFECTS:
                    raise ValueError(value)
                values[name] = value
            elif name == "query_fault":
                if value not in QUERY_FAULTS:
                    raise ValueError(value)
                values[name] = value
            elif name == "status_in_body":
                values[name] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            else:
                values[name] = int(value)
        except (TypeError, ValueError):
            raise AdminError(f"{name}: {value!r} is not valid") from None
    for status_field in ("create_status", "query_status"):
        status = values.get(status_field)
        if status is not None and not 200 <= status <= 599:
            raise AdminError(f"{status_field}: must be an HTTP status (200-599)")
    if values.get("polls") is not None and values["polls"] < 1:
        raise AdminError("polls: must be at least 1")
    return Outcome(**values)


def parse_prefer(header: str | None) -> Outcome:
    """`Prefer: state=-7, processing=2.5, status=500, script=0|2|-5, polls=3, body-status` (Prism style)."""
    if not header:
        return Outcome()
    values: dict[str, Any] = {}
    for token in header.replace(";", ",").split(","):
        token = token.strip()
        if not token:
            continue
        if token == "body-status":
            values["status_in_body"] = True
            continue
        name, _, value = token.partition("=")
        name = {"status": "create_status"}.get(name.strip(), name.strip())
        values[name] = value.strip()
    return outcome_from_mapping(values)


def prefer_status(header: str | None) -> int | None:
    """On a query, `Prefer: status=N` makes that one call answer N."""
    return parse_prefer(header).create_status


_rule_ids = itertools.count(1)


@dataclass
class Rule:
    outcome: Outcome
    operation: str | None = None
    filename: str | None = None  # a glob on the source file name (or the URL's last segment)
    times: int | None = None  # how many creates it applies to; None: every one
    id: int = field(default_factory=lambda: next(_rule_ids))
    applied: int = 0

    def matches(self, operation: str, filename: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        if self.operation and self.operation != operation:
            return False
        return not (self.filename and not fnmatch.fnmatchcase(filename, self.filename))

    def to_dict(self) -> dict[str, Any]:
        outcome = {k: v for k, v in asdict(self.outcome).items() if v is not None and k != "query_status_count"}
        if self.outcome.query_status is not None or self.outcome.query_fault is not None:
            outcome["query_status_count"] = self.outcome.query_status_count
        return {
            "id": self.id,
            "operation": self.operation,
            "filename": self.filename,
            "times": self.times,
            "applied": self.applied,
            **outcome,
        }


def rule_from_mapping(data: Any, operations) -> Rule:
    if not isinstance(data, dict):
        raise AdminError("a rule is a JSON object")
    data = dict(data)
    operation = data.pop("operation", None)
    if operation is not None and operation not in operations:
        raise AdminError(f"operation: unknown operation {operation!r}")
    filename = data.pop("filename", None)
    times = data.pop("times", None)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise AdminError("times: must be a positive integer")
    return Rule(outcome_from_mapping(data), operation=operation, filename=filename, times=times)
