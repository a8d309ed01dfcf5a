"""The API's `data` object for a task, as the docs show it for each operation and state."""

from __future__ import annotations

import base64
from typing import Any

from .progression import MISSING, Task
from .result_store import ResultStore


def task_data(task: Task, state: Any, progress: int, base_url: str, store: ResultStore, now: float) -> dict[str, Any]:
    """The documented `data` object for a task in `state`."""
    op = task.operation
    data: dict[str, Any] = {"task_id": task.id, "created_at": str(int(task.created)), "progress": progress}
    if state != MISSING:
        data["state"] = state
    if state != 0:
        data["processed_at"] = str(int(task.created))
    if task.completed is not None:
        data["completed_at"] = str(int(task.completed))
    return_type = task.request.options.get("return_type", 1)
    defect = task.outcome.result
    if state == 1 and task.outputs and defect != "missing":
        for name, token in task.outputs:
            stored = store.stored(token)
            if stored is None:  # the mock was reset under this answer
                continue
            if defect == "empty":
                value = ""
            elif return_type == 2:
                value = base64.b64encode(stored.data).decode()
            else:
                value = f"{base_url.rstrip('/')}/results/{token}/{stored.filename}"
            if name == "image":
                data["image"] = value
            elif name == "clothes_masks":
                data["clothes_masks"] = value
            else:
                data.setdefault("class_masks", {})[name] = value
    if op.name == "retouching-collection":
        data["return_type"] = return_type
        data["type"] = task.request.options.get("type", 1)
        finished = task.completed if task.completed is not None else now
        data["time_elapsed"] = f"{finished - task.created:.2f}"
        data["state_detail"] = _state_detail(state)
    if op.name == "clothing-segmentation":
        data["output_type"] = task.request.options.get("output_type", 1)
        data.setdefault("class_masks", {})
        data.setdefault("clothes_masks", "")
    return data


def _state_detail(state: Any) -> str:
    if state == 1:
        return "success"
    if isinstance(state, int) and state < 0:
        return "failed"
    return "processing"
