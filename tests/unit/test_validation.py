"""Every local validation rule, with the exact message that names the parameter and the rule."""

import json

import pytest

from picwish_visual import ValidationError, validate_request
from tests.support import images

IMG = images.photo(64, 48)
MASK = images.mask(64, 48)


def rejects(operation, inputs, options=None, *, sync=False):
    with pytest.raises(ValidationError) as info:
        validate_request(operation, inputs, options, sync=sync)
    return str(info.value)


def test_valid_requests_normalize_types():
    assert validate_request("retouching-collection", {"image": IMG, "mask": MASK}, {"retouch_strength": "80"}) == {
        "retouch_strength": 80
    }
    assert validate_request("idphoto", {"image": "https://x.test/a.jpg"}, {"size": "295x413", "format": "jpg"}) == {
        "size": "295x413",
        "format": "jpg",
    }
    rects = validate_request("inpaint", {"image": IMG}, {"rectangles": '[{"x":0,"y":0,"width":10,"height":10}]'})
    assert rects == {"rectangles": [{"x": 0, "y": 0, "width": 10, "height": 10}]}


@pytest.mark.parametrize(
    ("operation", "options", "message"),
    [
        ("retouching-collection", {"retouch_strength": 101}, "retouch_strength: must be between 0 and 100; got 101"),
        ("retouching-collection", {"line_strength": -1}, "line_strength: must be between 0 and 100; got -1"),
        ("retouching-collection", {"type": 7}, "type: must be one of 1, 2, 3, 4, 5, 6; got 7"),
        ("retouching-collection", {"type": "two"}, "type: must be an integer; got 'two'"),
        ("retouching-collection", {"type": True}, "type: must be an integer; got True"),
        ("correction", {"type": 5}, "type: must be one of 0, 1, 2, 3, 4; got 5"),
        ("correction", {"return_type": 3}, "return_type: value 3 is only allowed with sync=1"),
        ("inpaint", {"return_type": 3}, "return_type: must be one of 1, 2; got 3"),
        ("clothing-segmentation", {"class_type": 5}, "class_type: must be one of 1, 2, 3, 4; got 5"),
        ("clothing-segmentation", {"output_type": 0}, "output_type: must be one of 1, 2, 3; got 0"),
        ("clothing-segmentation", {"quality": 3}, "quality: must be one of 1, 2; got 3"),
        ("clothing-segmentation", {"detail_mode": 9}, "detail_mode: must be one of 1, 2; got 9"),
        ("idphoto", {"format": "gif"}, "format: must be one of png, jpg; got 'gif'"),
        ("idphoto", {"bg_color": "FFFFFF"}, "bg_color: is only allowed with format=jpg"),
        ("idphoto", {"bg_color": "FFFFFF", "format": "png"}, "bg_color: is only allowed with format=jpg"),
        ("idphoto", {"format": "jpg", "bg_color": "#FFFFFF"}, "bg_color: must be a colour RRGGBB in hexadecimal"),
        ("idphoto", {"format": "jpg", "bg_color": "FFFFF"}, "bg_color: must be a colour RRGGBB in hexadecimal"),
        ("idphoto", {"size": "300X400"}, "size: must be {width}x{height} with a lowercase x, each between 100"),
        ("idphoto", {"size": "99x400"}, "size: must be {width}x{height} with a lowercase x, each between 100"),
        ("idphoto", {"size": "300x2001"}, "size: must be {width}x{height} with a lowercase x, each between 100"),
        ("idphoto", {"size": "300x"}, "size: must be {width}x{height}"),
        ("idphoto", {"quality": 1}, "quality: unknown parameter for idphoto; known: size, format, bg_color"),
        ("idphoto", {"image_url": "https://x.test/a"}, "image_url: images and masks are passed as inputs"),
        ("idphoto", {"sync": 1}, "sync: sync is an argument of the call"),
    ],
)
def test_option_rules(operation, options, message):
    inputs = {"image": IMG, "mask": MASK} if operation == "retouching-collection" else {"image": IMG}
    assert rejects(operation, inputs, options).startswith(message)


def test_limits_inclusive():
    # Each limit is taken as given, and one step past it is refused by name.
    assert validate_request("idphoto", {"image": IMG}, {"size": "100x2000"}) == {"size": "100x2000"}
    assert rejects("idphoto", {"image": IMG}, {"size": "99x2000"}).startswith("size: ")
    assert rejects("idphoto", {"image": IMG}, {"size": "100x2001"}).startswith("size: ")
    strengths = {"retouch_strength": 0, "line_strength": 100}
    retouch = {"image": IMG, "mask": MASK}
    assert validate_request("retouching-collection", retouch, strengths) == strengths
    assert rejects("retouching-collection", retouch, {"retouch_strength": -1}).startswith("retouch_strength: ")
    assert rejects("retouching-collection", retouch, {"line_strength": 101}).startswith("line_strength: ")
    assert validate_request("correction", {"image": IMG}, {"return_type": 3}, sync=True) == {"return_type": 3}
    assert rejects("correction", {"image": IMG}, {"return_type": 3}).startswith("return_type: ")  # sync only
    colours = {"format": "jpg", "bg_color": "00ff7A"}
    assert validate_request("idphoto", {"image": IMG}, colours) == colours


@pytest.mark.parametrize(
    ("operation", "inputs", "message"),
    [
        ("idphoto", {}, "image_file: one of image_url / image_file is required"),
        ("retouching-collection", {"image": IMG}, "mask_file: one of mask_url / mask_file is required"),
        ("inpaint", {"image": IMG}, "mask_file: one of mask_url / mask_file / rectangles is required"),
        ("idphoto", {"mask": MASK, "image": IMG}, "mask: idphoto takes no mask input; it takes image"),
        ("idphoto", {"image": b""}, "image_file: must not be empty (0 bytes)"),
        ("idphoto", {"image": b"GIF89a" + b"\0" * 20}, "image_file: format gif is not accepted; accepted: jpeg"),
        ("idphoto", {"image": b"hello, this is text"}, "image_file: must be an image in one of the formats jpeg"),
        ("idphoto", {"image": images.corrupt_jpeg()}, "image_file: must be an image in one of the formats"),
        ("idphoto", {"image": "ftp://x.test/a.jpg"}, "image_url: must be an http(s) URL; got scheme 'ftp'"),
        ("idphoto", {"image": "https://x.test/" + "a" * 500}, "image_url: must be at most 512 characters; got 515"),
        (
            "idphoto",
            {"image": "https://x.test/a b.jpg"},
            "image_url: must be a URL of RFC 3986 characters (percent-encode the others)",
        ),
        ("idphoto", {"image": "https://x.tést/a.jpg"}, "image_url: must be a URL of RFC 3986 characters"),
        ("idphoto", {"image": "https://[::1/a.jpg"}, "image_url: must be an http(s) URL with a valid host"),
        ("idphoto", {"image": 42}, "image_file: must be bytes, a (filename, bytes) pair or a URL; got int"),
    ],
)
def test_input_rules(operation, inputs, message):
    assert rejects(operation, inputs).startswith(message)


def test_sgi_is_accepted_by_the_20mb_operations_but_not_by_retouching():
    sgi = images.encode(images.Image.new("RGB", (8, 8)), "SGI")
    validate_request("correction", {"image": sgi})
    assert "format sgi is not accepted" in rejects("retouching-collection", {"image": sgi, "mask": MASK})


def test_size_limit_per_operation():
    big = IMG + b"\0" * (20 * 1024 * 1024)
    assert rejects("idphoto", {"image": big}).startswith(
        f"image_file: must be at most 20 MB (20971520 bytes); got {len(big)} bytes"
    )
    big_mask = images.mask(64, 48)
    # Retouching allows 30 MB, so the same upload passes its size check.
    validate_request("retouching-collection", {"image": big, "mask": big_mask})


def test_dimensions_limit_reads_only_the_header():
    # A 4097-wide PNG is small on disk; the check must not need to decode it.
    wide = images.encode(images.Image.new("1", (4097, 10)), "PNG")
    assert rejects("correction", {"image": wide}) == "image_file: must be at most 4096x4096 pixels; got 4097x10"
    validate_request("correction", {"image": images.encode(images.Image.new("1", (4096, 4096)), "PNG")})


def test_masks_must_match_the_image():
    small_mask = images.mask(32, 48)
    assert rejects("retouching-collection", {"image": IMG, "mask": small_mask}) == (
        "mask_file: must have the same dimensions as the image (64x48); got 32x48"
    )
    assert rejects("retouching-collection", {"image": IMG, "mask": MASK, "retain_mask": small_mask}).startswith(
        "retain_mask_file: must have the same dimensions"
    )
    assert rejects("inpaint", {"image": IMG, "mask": small_mask}).startswith("mask_file: must have the same")


def test_inpaint_mask_area_at_most_half():
    half = images.mask(64, 48, box=(0, 0, 31, 47))  # exactly 50 %
    validate_request("inpaint", {"image": IMG, "mask": half})
    more = images.mask(64, 48, box=(0, 0, 32, 47))
    assert rejects("inpaint", {"image": IMG, "mask": more}) == (
        "mask_file: the removal area (white) must cover at most 50% of the image; it covers 51.6%"
    )


def test_inpaint_mask_and_rectangles_are_exclusive():
    rect = '[{"x":0,"y":0,"width":1,"height":1}]'
    assert rejects("inpaint", {"image": IMG, "mask": MASK}, {"rectangles": rect}) == (
        "rectangles: mask_url / mask_file / rectangles are mutually exclusive"
    )


@pytest.mark.parametrize(
    ("rectangles", "message"),
    [
        ("not json", 'rectangles: must be a JSON array like [{"x":0'),
        ("[]", "rectangles: must be a non-empty JSON array of rectangles"),
        ('{"x":0}', "rectangles: must be a non-empty JSON array of rectangles"),
        ([{"x": 0, "y": 0, "width": 1, "height": 1}] * 51, "rectangles: must hold at most 50 rectangles; got 51"),
        ('[{"x":0,"y":0,"width":1}]', "rectangles: rectangle 0 must be an object with exactly the keys"),
        ('[{"x":0,"y":0,"width":1.5,"height":1}]', "rectangles: rectangle 0: x, y, width and height must be integers"),
        ('[{"x":-1,"y":0,"width":1,"height":1}]', "rectangles: rectangle 0: x and y must be >= 0"),
        ('[{"x":0,"y":0,"width":0,"height":1}]', "rectangles: rectangle 0: x and y must be >= 0, width and height"),
        ('[{"x":60,"y":0,"width":5,"height":1}]', "rectangles: rectangle 0 must lie inside the image (64x48)"),
    ],
)
def test_rectangles_rules(rectangles, message):
    assert rejects("inpaint", {"image": IMG}, {"rectangles": rectangles}).startswith(message)


def test_fifty_rectangles_inside_the_image_pass():
    rects = json.dumps([{"x": i, "y": 0, "width": 1, "height": 48} for i in range(50)])
    assert len(validate_request("inpaint", {"image": IMG}, {"rectangles": rects})["rectangles"]) == 50


def test_unknown_operation():
    assert rejects("resize", {"image": IMG}).startswith("operation: unknown operation 'resize'")


def test_error_carries_param_rule_and_operation():
    with pytest.raises(ValidationError) as info:
        validate_request("idphoto", {"image": IMG}, {"size": "1x1"})
    err = info.value
    assert (err.param, err.operation, err.status) == ("size", "idphoto", None)
    assert err.rule.startswith("must be {width}x{height}")
