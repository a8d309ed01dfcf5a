"""Image facts read from bytes: the format by magic bytes (never the file name), dimensions, mask coverage."""

from __future__ import annotations

import io
from dataclasses import dataclass

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "sgi": "image/sgi",
    "gif": "image/gif",
    "zip": "application/zip",
}

EXTENSIONS = {"jpeg": "jpg", "png": "png", "bmp": "bmp", "webp": "webp", "tiff": "tif", "sgi": "rgb", "zip": "zip"}


def sniff_format(data: bytes) -> str | None:
    """The container format the first bytes announce, or None when they announce none we know."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:2] == b"\x01\xda":
        return "sgi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    return None


def content_type(data: bytes, default: str = "application/octet-stream") -> str:
    return CONTENT_TYPES.get(sniff_format(data) or "", default)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


class UnreadableImage(ValueError):
    """The bytes announce an image but its header cannot be read."""


def read_info(data: bytes) -> ImageInfo:
    """Format and dimensions from the header only: no pixel is decoded, so a huge image costs nothing here."""
    fmt = sniff_format(data)
    if fmt is None:
        raise UnreadableImage("not an image: the content starts with no known image signature")
    # Pillow is imported here, not at the top: most functions of the layer never decode an image, and importing
    # it costs each of them tens of milliseconds of cold start.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"the {fmt} header cannot be read ({type(exc).__name__})") from None
    return ImageInfo(fmt, width, height)


def mask_coverage(data: bytes) -> float:
    """Fraction of pixels marked for removal: white (>= 128 in grayscale) on black, as the inpaint doc says."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            gray = im.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImage(f"the mask cannot be decoded ({type(exc).__name__})") from None
    histogram = gray.histogram()
    total = gray.width * gray.height
    return sum(histogram[128:]) / total if total else 0.0
