"""What the mock's journal shows of one upload: the creates (POSTs) that sent its image."""

from __future__ import annotations


def posts_for(pipeline, filename: str) -> list[dict]:
    """Every create the mock received with `filename` as its image's file name, in order (200s and 429s)."""
    return [
        e
        for e in pipeline.mock.requests(method="POST")
        if (e.get("fields") or {}).get("image_file", {}).get("filename") == filename
    ]
