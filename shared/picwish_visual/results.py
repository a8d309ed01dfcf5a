"""Typed task results parsed from the API's `data` object: ids, state, progress, timestamps and outputs."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from .catalog import get_operation
from .errors import IncompleteResultError, UnexpectedResponseError
from .states import StateClass, classify_state, parse_state, state_meaning

CLASS_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # class names become file names: nothing else is accepted


@dataclass(frozen=True)
class Output:
    """One result: a URL to fetch within the hour, or bytes already decoded from base64 / a binary body."""

    url: str | None = None
    data: bytes | None = None

    @classmethod
    def parse(cls, value: Any, *, field_name: str) -> Output:
        if not isinstance(value, str) or not value:
            raise UnexpectedResponseError(f"{field_name}: expected a URL or base64 string, got {type(value).__name__}")
        if value.startswith(("http://", "https://")):
            return cls(url=value)
        if value.startswith("data:") and "," in value:
            value = value.split(",", 1)[1]
        try:
            return cls(data=base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise UnexpectedResponseError(f"{field_name}: neither a URL nor valid base64") from None


def _timestamp(value: Any) -> int | None:
    """The docs send Unix times as strings ("1700000000"); ints are tolerated, anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True)
class TaskResult:
    operation: str
    task_id: str
    state: Any = None  # as sent; use state_class / state_code to interpret it
    progress: int | None = None
    created_at: int | None = None
    processed_at: int | None = None
    completed_at: int | None = None
    image: Output | None = None
    class_masks: dict[str, Output] = field(default_factory=dict)
    clothes_masks: Output | None = None
    return_type: int | None = None
    type: int | None = None
    output_type: int | None = None
    time_elapsed: str | None = None
    state_detail: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def state_code(self) -> int | None:
        return parse_state(self.state)

    @property
    def state_class(self) -> StateClass:
        return classify_state(self.state)

    @property
    def state_meaning(self) -> str:
        return state_meaning(self.state)

    @property
    def is_done(self) -> bool:
        return self.state_class is StateClass.DONE

    @property
    def is_processing(self) -> bool:
        return self.state_class is StateClass.PROCESSING

    def carries(self, result_field: str) -> bool:
        """Whether the answer holds the catalog's result field `result_field` (a non-empty one)."""
        value = {"image": self.image, "class_masks": self.class_masks, "clothes_masks": self.clothes_masks}
        return bool(value[result_field])

    def outputs(self) -> dict[str, Output]:
        """Every output by a stable name: "image", one per clothing class, and "clothes_masks" (the ZIP)."""
        found: dict[str, Output] = {}
        if self.image is not None:
            found["image"] = self.image
        found.update(self.class_masks)
        if self.clothes_masks is not None:
            found["clothes_masks"] = self.clothes_masks
        return found

    @classmethod
    def from_data(cls, operation: str, data: Any, *, task_id: str | None = None) -> TaskResult:
        if not isinstance(data, dict):
            raise UnexpectedResponseError(f"data: expected an object, got {type(data).__name__}", task_id=task_id)
        tid = data.get("task_id", task_id)
        if not isinstance(tid, str) or not tid:
            raise UnexpectedResponseError("data.task_id: missing or not a string", task_id=task_id)
        state = data.get("state")
        done = classify_state(state) is StateClass.DONE
        image = data.get("image")
        masks = data.get("class_masks") or {}
        if not isinstance(masks, dict):
            raise UnexpectedResponseError("data.class_masks: expected an object", task_id=tid)
        zip_value = data.get("clothes_masks")
        if done:
            _check_done_outputs(operation, image, masks, zip_value, tid)
        return cls(
            operation=operation,
            task_id=tid,
            state=state,
            progress=_int_or_none(data.get("progress")),
            created_at=_timestamp(data.get("created_at")),
            processed_at=_timestamp(data.get("processed_at")),
            completed_at=_timestamp(data.get("completed_at")),
            # Outputs are read only once the task is done: a processing task may carry placeholders.
            image=Output.parse(image, field_name="data.image") if done and image else None,
            class_masks={
                str(k): Output.parse(v, field_name=f"data.class_masks.{k}") for k, v in masks.items() if done and v
            },
            clothes_masks=Output.parse(zip_value, field_name="data.clothes_masks") if done and zip_value else None,
            return_type=_int_or_none(data.get("return_type")),
            type=_int_or_none(data.get("type")),
            output_type=_int_or_none(data.get("output_type")),
            time_elapsed=None if data.get("time_elapsed") is None else str(data.get("time_elapsed")),
            state_detail=None if data.get("state_detail") is None else str(data.get("state_detail")),
            raw=data,
        )


def _check_done_outputs(operation: str, image: Any, masks: dict, zip_value: Any, task_id: str) -> None:
    """A task reported done must carry what its operation returns: `image` for four operations, class masks or
    the masks ZIP for clothing segmentation (an empty `clothes_masks` means "not returned"). A done answer
    without them is not a result, whatever its state says."""

    def fail(text: str) -> IncompleteResultError:
        return IncompleteResultError(f"the task reported done without its result: {text}", task_id=task_id)

    if "image" in get_operation(operation).result_fields:
        if not isinstance(image, str) or not image:
            raise fail(f"data.image is {image!r}")
        return
    for name, value in masks.items():
        if not CLASS_NAME.fullmatch(str(name)):
            raise fail(f"data.class_masks has an undocumented class name {str(name)[:40]!r}")
        if not isinstance(value, str) or not value:
            raise fail(f"data.class_masks.{name} is {value!r}")
    if not masks and not zip_value:
        raise fail("neither data.class_masks nor data.clothes_masks is present")
