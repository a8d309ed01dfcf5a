"""A task's inputs as the API reads them while the task processes: URL inputs fetched within the size limit,
every input decoded, and the documented failure state (-3, -5, -7, -14) when that goes wrong."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import requests
from PIL import Image, UnidentifiedImageError

from picwish_visual.catalog import MAX_SIDE, Operation
from picwish_visual.images import sniff_format

from . import imaging
from .config import MockConfig
from .forms import CreateRequest, Upload


@dataclass
class Prepared:
    """The task's results, rendered in the background from its inputs once fetched and decoded (as the API
    works while the task is processing), or the failure state that fetching or decoding ended in."""

    files: list[imaging.OutputFile] = field(default_factory=list)
    failure: int | None = None


class InputFetcher:
    def __init__(self, config: MockConfig) -> None:
        self.config = config

    def prepare(self, op: Operation, request: CreateRequest) -> Prepared:
        """Fetch URL inputs and decode every input, turning problems into the documented failure states."""
        raw: dict[str, bytes] = {}
        for slot, source in request.sources.items():
            if isinstance(source, Upload):
                raw[slot] = source.data
                continue
            fetched = self._download(source, op.max_bytes)
            if isinstance(fetched, int):
                return Prepared(failure=fetched)
            raw[slot] = fetched
        images: dict[str, Image.Image] = {}
        sizes: dict[str, tuple[int, int]] = {}
        for slot, data in raw.items():
            if sniff_format(data) not in op.formats:
                return Prepared(failure=-7)
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    sizes[slot] = opened.size
                    if max(opened.size) > MAX_SIDE:
                        return Prepared(failure=-14)
                    if self.config.render_max_side:  # a JPEG decodes straight to a smaller scale
                        opened.draft(opened.mode, (self.config.render_max_side, self.config.render_max_side))
                    opened.load()
                    images[slot] = opened.copy()
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                return Prepared(failure=-7)
        if any(size != sizes["image"] for size in sizes.values()):
            return Prepared(failure=-14)  # image and masks must have the same dimensions
        if op.max_mask_area is not None and "mask" in images:
            histogram = images["mask"].convert("L").histogram()
            w, h = images["mask"].size
            if sum(histogram[128:]) / (w * h) > op.max_mask_area:
                return Prepared(failure=-14)
        scaled = imaging.scaled(images, self.config.render_max_side)
        return Prepared(files=imaging.render(op.name, scaled, request.options))

    def _download(self, url: str, max_bytes: int) -> bytes | int:
        """The bytes at `url`, or -5 when over the size limit, -3 when it cannot be fetched."""
        try:
            with requests.get(url, stream=True, timeout=self.config.download_timeout_s) as response:
                if response.status_code != 200:
                    return -3
                chunks, size = [], 0
                deadline = time.monotonic() + self.config.download_timeout_s
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        return -5
                    if time.monotonic() > deadline:
                        return -3
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.RequestException:
            return -3
