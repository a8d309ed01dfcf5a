"""Real images made with Pillow for tests: photos, masks and broken files, as bytes."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def photo(width: int = 64, height: int = 48, fmt: str = "JPEG", color=(200, 60, 40)) -> bytes:
    """A small photo-like picture: a coloured square on a gradient, so results can be told from inputs."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for x in range(width):
        draw.line([(x, 0), (x, height)], fill=(x * 255 // max(width, 1), 120, 255 - x * 255 // max(width, 1)))
    draw.rectangle([width // 4, height // 4, 3 * width // 4, 3 * height // 4], fill=color)
    return encode(image, fmt)


def mask(width: int = 64, height: int = 48, box: tuple[int, int, int, int] | None = None) -> bytes:
    """White (to change) on black; `box` is (left, top, right, bottom), default the centre quarter."""
    image = Image.new("L", (width, height), 0)
    box = box or (width // 4, height // 4, 3 * width // 4 - 1, 3 * height // 4 - 1)
    ImageDraw.Draw(image).rectangle(box, fill=255)
    return encode(image, "PNG")


def corrupt_jpeg() -> bytes:
    """JPEG magic bytes followed by garbage: passes a name check, fails any decoder."""
    return b"\xff\xd8\xff\xe0" + b"\x00garbage" * 16


def portrait(width: int = 80, height: int = 60, fmt: str = "JPEG") -> bytes:
    """A subject on a plain light background, as ID photos and product shots are taken."""
    image = Image.new("RGB", (width, height), (235, 235, 235))
    draw = ImageDraw.Draw(image)
    draw.ellipse([width // 4, height // 6, 3 * width // 4, 5 * height // 6], fill=(150, 90, 60))
    draw.rectangle([width // 3, height // 3, 2 * width // 3, height // 2], fill=(20, 20, 120))
    return encode(image, fmt)


def bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG header announcing `width` × `height` 1-bit pixels over a few bytes of data: a decompression
    bomb (112 MB of pixels) in under 100 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
