"""The catalog against the five docs' tables, copied here by hand so a missing entry fails a test."""

import pytest

from picwish_visual import catalog
from picwish_visual.states import HTTP_STATUSES, TASK_STATES, StateClass, classify_state, parse_state, state_meaning

# Body parameter names exactly as each doc's "Body parameters" table lists them.
DOC_PARAMETERS = {
    "retouching-collection": {
        "image_url",
        "image_file",
        "mask_url",
        "mask_file",
        "retain_mask_url",
        "retain_mask_file",
        "sync",
        "retouch_strength",
        "line_strength",
        "type",
    },
    "correction": {"image_url", "image_file", "sync", "type", "return_type"},
    "inpaint": {"image_url", "image_file", "mask_url", "mask_file", "rectangles", "return_type", "sync"},
    "clothing-segmentation": {
        "image_url",
        "image_file",
        "sync",
        "detail_mode",
        "output_type",
        "quality",
        "class_type",
    },
    "idphoto": {"image_url", "image_file", "sync", "size", "format", "bg_color", "return_type"},
}

DOC_STATES = [-17, -16, -15, -14, -13, -11, -10, -9, -8, -7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6]
DOC_HTTP = [200, 400, 401, 404, 413, 429, 500]


def test_catalog_has_exactly_the_five_operations():
    assert set(catalog.OPERATIONS) == set(DOC_PARAMETERS)


@pytest.mark.parametrize("name", sorted(DOC_PARAMETERS))
def test_every_documented_parameter_is_in_the_catalog(name):
    assert set(catalog.get_operation(name).param_names) == DOC_PARAMETERS[name]


@pytest.mark.parametrize(
    ("name", "path"),
    [(n, f"/api/tasks/visual/{n}") for n in DOC_PARAMETERS],
)
def test_paths(name, path):
    assert catalog.get_operation(name).path == path


@pytest.mark.parametrize(
    ("name", "param", "default", "bounds"),
    [
        ("retouching-collection", "retouch_strength", 37, (0, 100)),
        ("retouching-collection", "line_strength", 60, (0, 100)),
    ],
)
def test_ranges_and_defaults(name, param, default, bounds):
    p = catalog.get_operation(name).param(param)
    assert (p.default, (p.minimum, p.maximum)) == (default, bounds)


@pytest.mark.parametrize(
    ("name", "param", "choices", "default"),
    [
        ("retouching-collection", "type", (1, 2, 3, 4, 5, 6), 1),
        ("correction", "type", (0, 1, 2, 3, 4), 1),
        ("correction", "return_type", (1, 2, 3), 1),
        ("inpaint", "return_type", (1, 2), 1),
        ("idphoto", "return_type", (1, 2), 1),
        ("idphoto", "format", ("png", "jpg"), "png"),
        ("clothing-segmentation", "detail_mode", (1, 2), 1),
        ("clothing-segmentation", "output_type", (1, 2, 3), 1),
        ("clothing-segmentation", "quality", (1, 2), 1),
        ("clothing-segmentation", "class_type", (1, 2, 3, 4), 1),
    ],
)
def test_choices_and_defaults(name, param, choices, default):
    p = catalog.get_operation(name).param(param)
    assert (p.choices, p.default) == (choices, default)


@pytest.mark.parametrize(
    ("name", "max_mb", "interval", "total", "credits", "file_wins"),
    [
        ("retouching-collection", 30, 1, 180, None, True),
        ("correction", 20, 1, 30, 3, False),
        ("inpaint", 20, 1, None, None, False),
        ("clothing-segmentation", 20, 1, 30, 3, False),
        ("idphoto", 20, 1, None, 1, False),
    ],
)
def test_limits_polling_and_credits(name, max_mb, interval, total, credits, file_wins):
    op = catalog.get_operation(name)
    assert op.max_bytes == max_mb * 1024 * 1024
    assert (op.poll_interval_s, op.poll_total_s, op.credits) == (interval, total, credits)
    assert all(slot.file_wins is file_wins for slot in op.slots)
    assert catalog.MAX_SIDE == 4096


def test_exclusivity_and_extra_rules():
    inpaint = catalog.get_operation("inpaint")
    assert inpaint.slot("mask").alternatives == ("rectangles",)
    assert (inpaint.max_rectangles, inpaint.max_mask_area) == (50, 0.5)
    assert catalog.get_operation("idphoto").param("bg_color").requires == {"format": ("jpg",)}
    rt = catalog.get_operation("correction").param("return_type")
    assert (rt.requires, rt.requires_for) == ({"sync": (1,)}, (3,))
    assert catalog.get_operation("retouching-collection").slot("retain_mask").required is False


def test_clothing_classes_per_class_type():
    assert catalog.CLOTHING_CLASSES[3] == ("hair", "face", "head", "body")
    assert len(catalog.CLOTHING_CLASSES[4]) == 12


def test_formats_follow_each_doc():
    assert "sgi" not in catalog.get_operation("retouching-collection").formats
    assert "sgi" in catalog.get_operation("idphoto").formats


def test_unknown_operation_names_the_known_ones():
    with pytest.raises(KeyError, match="known: retouching-collection, correction"):
        catalog.get_operation("resize")


def test_every_documented_state_and_status_has_its_meaning():
    assert sorted(TASK_STATES) == DOC_STATES
    assert sorted(HTTP_STATUSES) == DOC_HTTP
    assert state_meaning(-8) == "Processing timed out. The maximum processing time is 180 seconds."
    assert HTTP_STATUSES[429].startswith("Request frequency exceeds the QPS limit")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, StateClass.DONE), (0, StateClass.PROCESSING)]
    + [(s, StateClass.PROCESSING) for s in (2, 3, 4, 5, 6)]
    + [(s, StateClass.FAILED) for s in DOC_STATES if s < 0]
    + [(v, StateClass.UNKNOWN) for v in (7, -18, -4, -6, -12, None, "1", True, 1.0, [])],
)
def test_classify_state(value, expected):
    assert classify_state(value) is expected


def test_parse_state_rejects_strings_and_bools():
    assert parse_state("1") is None
    assert parse_state(True) is None
    assert parse_state(-7) == -7
