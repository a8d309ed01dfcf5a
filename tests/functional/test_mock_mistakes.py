"""A client's mistake is never a 500 from the mock: each is a 400 naming the parameter, in the envelope. Cases
found by hand, and a hypothesis search over the form fields and the Prefer header."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.functional.test_mock_api import H, create, query
from tests.support import images

PHOTO = images.photo(80, 60, fmt="PNG")


@pytest.mark.parametrize(
    ("operation", "fields", "param"),
    [
        ("retouching-collection", {"retouch_strength": "9" * 5000}, "retouch_strength"),
        ("correction", {"type": "١"}, "type"),
        ("correction", {"type": "٣"}, "type"),
        ("inpaint", {"rectangles": '[{"x":1' + "0" * 5000 + ',"y":0,"width":1,"height":1}]'}, "rectangles"),
        ("inpaint", {"rectangles": '[{"x":' + "9" * 400 + ',"y":0,"width":1,"height":1}]'}, "rectangles"),
        ("inpaint", {"rectangles": "[" * 100_000 + "]" * 100_000}, "rectangles"),
    ],
)
def test_malformed_parameters_are_400_naming_them(web, operation, fields, param):
    response = create(web, operation, image_file=PHOTO, **fields)
    body = response.get_json()
    assert (response.status_code, body["status"]) == (400, 400), body
    assert body["message"].startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("operation", "fields", "param", "rule"),
    [
        ("idphoto", {"size": ""}, "size", "must not be empty"),
        ("retouching-collection", {"retouch_strength": ""}, "retouch_strength", "must not be empty"),
        ("idphoto", {"image_url": "https://example.com/a b.jpg"}, "image_url", "RFC 3986 characters"),
        ("idphoto", {"image_url": "https://exämple.com/a.jpg"}, "image_url", "RFC 3986 characters"),
        ("idphoto", {"image_url": "https://[::1/a.jpg"}, "image_url", "valid host"),
        # the file wins over the URL in retouching, but a malformed URL is still a mistake worth saying
        ("retouching-collection", {"mask_url": "https://" + "a" * 600}, "mask_url", "at most 512 characters"),
        ("retouching-collection", {"retain_mask_url": "ftp://x/m.png"}, "retain_mask_url", "http(s) URL"),
    ],
)
def test_empty_fields_and_urls_outside_rfc_3986_are_400_naming_them(web, operation, fields, param, rule):
    extra = {} if "image_url" in fields else {"image_file": PHOTO}
    if operation == "retouching-collection":
        extra["mask_file"] = images.mask(80, 60)
        extra["retain_mask_file"] = images.mask(80, 60)
    response = create(web, operation, **extra, **fields)
    body = response.get_json()
    assert (response.status_code, body["status"]) == (400, 400), body
    assert body["message"].startswith(f"{param}: ") and rule in body["message"], body["message"]


def test_a_field_sent_twice_is_400_naming_it(web):
    data = MultiDict([("sync", "0"), ("image_file", (io.BytesIO(PHOTO), "a.png")), ("size", "295x413")])
    data.add("size", "413x531")
    response = web.post("/api/tasks/visual/idphoto", headers=H, data=data)
    body = response.get_json()
    assert (response.status_code, body["message"]) == (400, "size: must be given at most once; got 2 values")
    data = MultiDict([("sync", "0"), ("image_file", (io.BytesIO(PHOTO), "a.png"))])
    data.add("image_file", (io.BytesIO(PHOTO), "b.png"))
    response = web.post("/api/tasks/visual/idphoto", headers=H, data=data)
    assert response.get_json()["message"] == "image_file: must be given at most once; got 2 values"


@pytest.mark.parametrize("prefer", ["status=abc", "status=", "polls=0", "script=", "state=x", "status=99999"])
def test_a_malformed_prefer_header_is_400_on_a_create_and_on_a_query(web, prefer):
    task_id = create(web, "idphoto", image_file=PHOTO).get_json()["data"]["task_id"]
    for response in (
        create(web, "idphoto", headers={"Prefer": prefer}, image_file=PHOTO),
        query(web, "idphoto", task_id, headers={"Prefer": prefer}),
    ):
        body = response.get_json()
        assert (response.status_code, body["status"]) == (400, 400), (prefer, body)
        assert body["message"].startswith("Prefer: ")


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
# What breaks parsers: numerals of other scripts, numbers past Python's 4,300-digit conversion limit, nesting
# past the JSON parser's recursion limit, and plain junk.
numeric_looking = st.one_of(
    st.integers().map(str),
    st.text(alphabet="0123456789١٣-+ .e", max_size=30),
    st.integers(4200, 5000).map(lambda n: "9" * n),
    st.integers(900, 3000).map(lambda n: "[" * n),
    st.integers(0, 2).map(lambda i: '[{"x":' + "7" * (400 + 4000 * i) + ',"y":0,"width":1,"height":1}]'),
    text,
)
prefer_tokens = st.builds(
    "{}={}".format, st.sampled_from(["status", "state", "polls", "script", "processing"]), st.text(max_size=6)
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    operation=st.sampled_from(["retouching-collection", "correction", "inpaint", "clothing-segmentation", "idphoto"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "retouch_strength",
                "rectangles",
                "size",
                "format",
                "bg_color",
                "class_type",
                "output_type",
                "return_type",
                "detail_mode",
                "quality",
                "sync",
                "image_url",
                "mask_url",
                "unknown",
            ]
        ),
        numeric_looking,
        max_size=4,
    ),
    prefer=st.one_of(st.none(), text, prefer_tokens),
)
def test_no_form_and_no_prefer_header_makes_the_mock_fail(web, operation, fields, prefer):
    headers = {"Prefer": prefer} if prefer is not None else {}
    try:
        response = create(web, operation, headers=headers, image_file=PHOTO, **fields)
        answers = [response]
        if response.status_code == 200 and prefer is not None:
            task_id = create(web, operation, image_file=PHOTO, **fields).get_json()["data"]["task_id"]
            answers.append(query(web, operation, task_id, headers=headers))
    except ValueError:  # a header value the HTTP client itself refuses to send (a newline): nothing reached the mock
        return
    for answer in answers:
        assert answer.status_code < 500, answer.get_json()
    body = response.get_json()
    assert set(body) >= {"status", "message"} and (body["status"] == 200 or response.status_code >= 400)
