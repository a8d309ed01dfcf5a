"""Real outputs made with Pillow that follow each request: sizes, formats, masks and strengths are honoured.

The mock has no model; these stand-ins are deterministic and checkable: an inpaint changes exactly the masked
pixels, a retouch changes only masked pixels outside the retain mask, an ID photo has the requested size.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps, ImageStat

from picwish_visual.catalog import CLOTHING_CLASSES


@dataclass(frozen=True)
class OutputFile:
    name: str  # "image", a clothing class, or "clothes_masks"
    filename: str
    data: bytes
    content_type: str


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def _png(name: str, image: Image.Image, stem: str = "result") -> OutputFile:
    return OutputFile(name, f"{stem}.png", _encode(image, "PNG"), "image/png")


def _jpeg(name: str, image: Image.Image) -> OutputFile:
    return OutputFile(name, "result.jpg", _encode(image, "JPEG"), "image/jpeg")


def _background_alpha(image: Image.Image, threshold: int = 48) -> Image.Image:
    """An alpha mask that hides pixels close to the border's colour: a plain stand-in for subject matting."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    border = [rgb.getpixel((x, y)) for x in (0, w - 1) for y in (0, h - 1)]
    bg = tuple(sorted(channel)[len(channel) // 2] for channel in zip(*border, strict=True))
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, bg)).convert("L")
    return diff.point(lambda v: 255 if v > threshold else 0)


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to fill `size` and crop the overflow around the centre, as an ID photo crop does."""
    return ImageOps.fit(image, size, method=Image.Resampling.LANCZOS, centering=(0.5, 0.4))


def idphoto(images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    source = images["image"].convert("RGB")
    if "size" in options:
        width, height = (int(v) for v in options["size"].split("x"))
    else:
        width, height = source.size
    alpha = _background_alpha(source)
    subject = source.copy()
    subject.putalpha(alpha)
    subject = _cover(subject, (width, height))
    if options.get("format", "png") == "jpg":
        colour = "#" + options.get("bg_color", "FFFFFF")
        canvas = Image.new("RGB", subject.size, colour)
        canvas.paste(subject, mask=subject.getchannel("A"))
        return [_jpeg("image", canvas)]
    return [_png("image", subject)]


def _content_box(image: Image.Image) -> tuple[int, int, int, int]:
    box = _background_alpha(image).getbbox()
    return box or (0, 0, *image.size)


def correction(images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    kind = options.get("type", 1)
    source = images["image"].convert("RGB")
    if kind in (0, 2, 3, 4):  # crop to the subject/document and straighten (upright it is already)
        source = source.crop(_content_box(source))
    if kind in (1, 2):  # text enhancement: grey, stretched contrast, sharpened strokes
        source = ImageOps.autocontrast(ImageOps.grayscale(source), cutoff=2).filter(ImageFilter.SHARPEN)
    if kind == 4:
        cutout = source.convert("RGBA")
        cutout.putalpha(_background_alpha(source))
        return [_png("image", cutout)]
    return [_jpeg("image", source)]


def _mask_from(image: Image.Image) -> Image.Image:
    return image.convert("L").point(lambda v: 255 if v >= 128 else 0)


def inpaint(images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    source = images["image"].convert("RGB")
    if "mask" in images:
        mask = _mask_from(images["mask"])
    else:
        mask = Image.new("L", source.size, 0)
        draw = ImageDraw.Draw(mask)
        for r in options["rectangles"]:
            draw.rectangle([r["x"], r["y"], r["x"] + r["width"] - 1, r["y"] + r["height"] - 1], fill=255)
    # Fill the hole from its surroundings: the mean colour of the kept pixels, then a blur that bleeds edges in.
    kept_mean = tuple(int(v) for v in _mean_colour(source, ImageOps.invert(mask)))
    base = source.copy()
    base.paste(Image.new("RGB", source.size, kept_mean), mask=mask)
    filled = base.filter(ImageFilter.GaussianBlur(radius=max(2, min(source.size) // 16)))
    result = source.copy()
    result.paste(filled, mask=mask)  # only masked pixels change
    return [_png("image", result)]


def _mean_colour(image: Image.Image, mask: Image.Image) -> tuple[float, ...]:
    if mask.getbbox() is None:
        return tuple(ImageStat.Stat(image).mean)
    return tuple(ImageStat.Stat(image, mask).mean)


def retouching(images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    source = images["image"].convert("RGB")
    area = _mask_from(images["mask"])
    if "retain_mask" in images:
        area = ImageChops.subtract(area, _mask_from(images["retain_mask"]))
    material = options.get("retouch_strength", 37) / 100
    lines = options.get("line_strength", 60) / 100
    smoothed = source.filter(ImageFilter.GaussianBlur(radius=1 + 4 * material))
    retouched = Image.blend(source, smoothed, material)
    retouched = ImageEnhance.Contrast(retouched).enhance(1 + 0.6 * material)
    retouched = ImageEnhance.Sharpness(retouched).enhance(1 + 2 * lines)
    result = source.copy()
    result.paste(retouched, mask=area)
    return [_png("image", result)]


def _bands(size: tuple[int, int], classes: tuple[str, ...]) -> dict[str, Image.Image]:
    """One region per class, stacked top to bottom in the order a person is (hair over face over body...)."""
    w, h = size
    masks = {}
    for i, name in enumerate(classes):
        mask = Image.new("L", size, 0)
        top, bottom = h * i // len(classes), h * (i + 1) // len(classes) - 1
        if bottom >= top:  # an image shorter than the class count leaves some classes empty
            ImageDraw.Draw(mask).rectangle([w // 8, top, w - 1 - w // 8, bottom], fill=255)
        masks[name] = mask
    return masks


def clothing_segmentation(images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    source = images["image"]
    classes = CLOTHING_CLASSES[options.get("class_type", 1)]
    masks = _bands(source.size, classes)
    output_type = options.get("output_type", 1)
    outputs: list[OutputFile] = []
    if output_type in (1, 3):
        outputs += [_png(name, mask, stem=name) for name, mask in masks.items()]
    if output_type in (2, 3):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, mask in masks.items():
                # Subdivided masks: each class region split into its left and right parts.
                w, h = mask.size
                for side, box in (("left", (0, 0, w // 2, h)), ("right", (w // 2, 0, w, h))):
                    part = Image.new("L", mask.size, 0)
                    part.paste(mask.crop(box), box[:2])
                    archive.writestr(f"{name}_{side}.png", _encode(part, "PNG"))
        outputs.append(OutputFile("clothes_masks", "clothes_masks.zip", buffer.getvalue(), "application/zip"))
    return outputs


RENDERERS = {
    "idphoto": idphoto,
    "correction": correction,
    "inpaint": inpaint,
    "retouching-collection": retouching,
    "clothing-segmentation": clothing_segmentation,
}


def scaled(images: dict[str, Image.Image], max_side: int | None) -> dict[str, Image.Image]:
    """Every input at one common smaller size (image and masks keep matching), when the longer side is larger."""
    if not max_side or not images:
        return images
    width, height = images.get("image", next(iter(images.values()))).size
    if max(width, height) <= max_side:
        return images
    factor = max_side / max(width, height)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return {name: image.resize(size, Image.Resampling.BILINEAR) for name, image in images.items()}


def render(operation: str, images: dict[str, Image.Image], options: dict[str, Any]) -> list[OutputFile]:
    return RENDERERS[operation](images, options)
