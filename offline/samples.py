"""The demo's sample set, generated with Pillow: real images for every operation, good and deliberately bad
inputs, and API failures forced through the mock's rules — each with the outcome it must end in."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def portrait(width: int = 240, height: int = 300) -> Image.Image:
    """A person-like subject on a plain studio background."""
    image = Image.new("RGB", (width, height), (232, 236, 240))
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.ellipse([cx - width // 5, height // 8, cx + width // 5, height // 8 + width * 2 // 5], fill=(224, 172, 140))
    draw.ellipse([cx - width // 5, height // 10, cx + width // 5, height // 4], fill=(70, 45, 30))
    draw.rounded_rectangle([cx - width // 3, height // 2, cx + width // 3, height - 1], 30, fill=(40, 70, 140))
    draw.rectangle([cx - width // 10, height // 2, cx + width // 10, height * 3 // 4], fill=(235, 235, 235))
    return image


def product(width: int = 320, height: int = 240) -> Image.Image:
    """A bag-like product on a table, with a logo to remove."""
    image = Image.new("RGB", (width, height), (246, 240, 230))
    draw = ImageDraw.Draw(image)
    for y in range(height * 2 // 3, height):
        draw.line([(0, y), (width, y)], fill=(200 - (y - height * 2 // 3), 170, 140))
    draw.rounded_rectangle([width // 4, height // 4, width * 3 // 4, height * 5 // 6], 24, fill=(150, 60, 40))
    draw.arc([width * 3 // 8, height // 8, width * 5 // 8, height * 3 // 8], 180, 360, fill=(90, 30, 20), width=8)
    draw.rectangle([width * 7 // 16, height // 2, width * 9 // 16, height * 19 // 32], fill=(240, 200, 60))
    return image


def document(width: int = 300, height: int = 360) -> Image.Image:
    """A page of 'text' photographed on a desk."""
    image = Image.new("RGB", (width, height), (120, 100, 80))
    draw = ImageDraw.Draw(image)
    draw.rectangle([30, 24, width - 30, height - 24], fill=(225, 222, 210))
    for i, y in enumerate(range(50, height - 50, 18)):
        draw.line([(50, y), (width - 50 - (i % 3) * 30, y)], fill=(60, 60, 70), width=4)
    return image


def mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rectangle(box, fill=255)
    return m


@dataclass
class Sample:
    key: str  # under incoming/
    body: bytes
    expect: str  # "result" or "failed:<reason>"
    title: str
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, bytes] = field(default_factory=dict)  # other input-bucket keys (masks), uploaded first
    rule: dict | None = None  # a mock rule that forces the API's behaviour for this file


def demo_set() -> list[Sample]:
    person, bag, page = portrait(), product(), document()
    bag_size = bag.size
    logo = (bag_size[0] * 7 // 16, bag_size[1] // 2, bag_size[0] * 9 // 16, bag_size[1] * 19 // 32)
    return [
        Sample(
            "incoming/idphoto/staff/anna.jpg",
            encode(person, "JPEG"),
            "result",
            "ID photo 295×413 on white (JPG)",
            {"size": "295x413", "format": "jpg", "bg_color": "FFFFFF"},
        ),
        Sample("incoming/idphoto/staff/ben.png", encode(person, "PNG"), "result", "ID photo, transparent PNG"),
        Sample(
            "incoming/correction/scans/page 1.jpg",
            encode(page, "JPEG"),
            "result",
            "Document: crop + enhance",
            {"type": "2"},
        ),
        Sample(
            "incoming/correction/products/bag.jpg",
            encode(bag, "JPEG"),
            "result",
            "Product: crop + cut-out",
            {"type": "4"},
        ),
        Sample(
            "incoming/inpaint/shop/bag-logo.png",
            encode(bag, "PNG"),
            "result",
            "Remove the logo (mask)",
            extra={"masks/inpaint/shop/bag-logo.png": encode(mask(bag_size, logo), "PNG")},
        ),
        Sample(
            "incoming/inpaint/shop/bag-rect.png",
            encode(bag, "PNG"),
            "result",
            "Remove the logo (rectangles)",
            {
                "rectangles": json.dumps(
                    [{"x": logo[0], "y": logo[1], "width": logo[2] - logo[0] + 1, "height": logo[3] - logo[1] + 1}],
                    separators=(",", ":"),
                )
            },
        ),
        Sample(
            "incoming/retouching-collection/bags/tote.png",
            encode(bag, "PNG"),
            "result",
            "Retouch the bag, keep the handle",
            {"retouch-strength": "70", "line-strength": "40", "type": "6"},
            extra={
                "masks/retouching-collection/bags/tote.png": encode(
                    mask(bag_size, (bag_size[0] // 4, bag_size[1] // 8, bag_size[0] * 3 // 4, bag_size[1] * 5 // 6)),
                    "PNG",
                ),
                "masks/retouching-collection/bags/tote.retain.png": encode(
                    mask(
                        bag_size, (bag_size[0] * 3 // 8, bag_size[1] // 8, bag_size[0] * 5 // 8, bag_size[1] * 3 // 8)
                    ),
                    "PNG",
                ),
            },
        ),
        Sample(
            "incoming/clothing-segmentation/looks/look 01.jpg",
            encode(person, "JPEG"),
            "result",
            "Clothing: all classes + ZIP",
            {"class_type": "4", "output_type": "3"},
        ),
        # Bad input: refused before any paid call.
        Sample(
            "incoming/idphoto/bad/corrupt.jpg",
            b"\xff\xd8\xff\xe0" + b"\x00garbage" * 32,
            "failed:invalid input",
            "Corrupt JPEG",
        ),
        Sample(
            "incoming/correction/bad/too-wide.png",
            encode(Image.new("1", (5000, 10)), "PNG"),
            "failed:invalid input",
            "5000×10 pixels (over 4096)",
        ),
        Sample(
            "incoming/inpaint/bad/mismatch.png",
            encode(bag, "PNG"),
            "failed:invalid input",
            "Mask of other dimensions",
            extra={"masks/inpaint/bad/mismatch.png": encode(mask((100, 100), (0, 0, 20, 20)), "PNG")},
        ),
        Sample(
            "incoming/idphoto/bad/size.jpg",
            encode(person, "JPEG"),
            "failed:invalid input",
            "size=300X400",
            {"size": "300X400"},
        ),
        Sample(
            "incoming/resize/bad/photo.jpg",
            encode(person, "JPEG"),
            "failed:unknown operation",
            "Unknown operation 'resize'",
        ),
        # API failures forced through the mock's rules.
        Sample(
            "incoming/idphoto/forced/invalid-7.jpg",
            encode(person, "JPEG"),
            "failed:task failed",
            "API answers state -7",
            rule={"state": -7},
        ),
        Sample(
            "incoming/correction/forced/overtime-8.jpg",
            encode(page, "JPEG"),
            "failed:task failed",
            "API answers state -8 (timeout)",
            rule={"state": -8},
        ),
        Sample(
            "incoming/idphoto/forced/busy-429.jpg",
            encode(person, "JPEG"),
            "result",
            "Polls answered 429 twice, then fine",
            rule={"query_status": 429, "query_status_count": 2},
        ),
        Sample(
            "incoming/idphoto/forced/expired.jpg",
            encode(person, "JPEG"),
            "failed:result expired",
            "Result link already expired",
            rule={"result_ttl": 0},
        ),
    ]
