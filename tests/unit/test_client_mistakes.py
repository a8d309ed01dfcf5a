"""Odd but plausible mistakes of a user of the client: each is a ValidationError naming the parameter, raised
before any request (`responses` fails the test if one is sent); Retry-After is capped."""

import pytest
import responses

from picwish_visual import PicWishClient, RateLimitError, ValidationError
from picwish_visual.retry import MAX_RETRY_AFTER_S, parse_retry_after
from tests.support import images

IMG = images.photo()


@pytest.fixture
def client():
    return PicWishClient("key", max_retries=0)


@pytest.fixture(autouse=True)
def no_request_is_sent():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        assert len(mock.calls) == 0 or getattr(mock, "expected_calls", False)


@pytest.mark.parametrize(
    ("call", "param", "rule"),
    [
        (lambda c: c.create_task("idphoto", IMG, [("size", "300x400")]), "options", "must be a mapping"),
        (
            lambda c: c.create_task("retouching-collection", IMG, {"retouch_strength": 10**5000}),
            "retouch_strength",
            "must be between 0 and 100; got an integer of 5001 digits",
        ),
        (
            lambda c: c.create_task("retouching-collection", IMG, {"retouch_strength": "9" * 5000}),
            "retouch_strength",
            "must be an integer; got a number of 5000 digits",
        ),
        (lambda c: c.create_task("correction", IMG, {"type": "١"}), "type", "must be an integer; got '١'"),
        (lambda c: c.create_task("correction", IMG, {"type": "٣"}), "type", "must be an integer"),
        (
            lambda c: c.create_task("idphoto", ("me.jpg",)),
            "image_file",
            "must be bytes, a (filename, bytes) pair or a URL",
        ),
        (
            lambda c: c.create_task("idphoto", ("me.jpg", "not bytes")),
            "image_file",
            "must be bytes, a (filename, bytes) pair or a URL",
        ),
        (lambda c: c.get_task("idphoto", 12345), "task_id", "must be a string"),
        (lambda c: c.get_task("idphoto", "abc?x=1"), "task_id", "must be letters, digits, '-' or '_'"),
        (lambda c: c.get_task("idphoto", "abc#frag"), "task_id", "must be letters, digits, '-' or '_'"),
        (lambda c: c.get_task("idphoto", ".."), "task_id", "must be letters, digits, '-' or '_'"),
        (lambda c: c.get_task("idphoto", "x" * 200), "task_id", "at most 128"),
        (lambda c: c.create_task("inpaint", IMG, {"rectangles": "[" * 100_000}), "rectangles", "must be a JSON array"),
    ],
)
def test_a_mistake_is_a_validation_error_naming_the_parameter_before_any_request(client, call, param, rule):
    with pytest.raises(ValidationError) as refused:
        call(client)
    assert refused.value.param == param
    assert rule in refused.value.message, refused.value.message


def test_deeply_nested_rectangles_as_python_objects_are_refused():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(ValidationError, match=r"^rectangles: rectangle 0 must be an object"):
        PicWishClient("key").create_task("inpaint", IMG, {"rectangles": nested})


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("86400", MAX_RETRY_AFTER_S), ("inf", MAX_RETRY_AFTER_S), ("nan", None), ("2.5", 2.5), ("-1", None)],
)
def test_retry_after_is_capped(header, seconds):
    assert parse_retry_after(header) == seconds


def test_a_day_long_retry_after_does_not_make_the_client_sleep_a_day(no_request_is_sent):
    slept = []
    url = "https://techhk.aoscdn.com/api/tasks/visual/idphoto/t1"
    no_request_is_sent.get(url, status=429, headers={"Retry-After": "86400"}, json={"status": 429, "message": "busy"})
    no_request_is_sent.expected_calls = True
    client = PicWishClient("key", max_retries=1, sleep=slept.append)
    with pytest.raises(RateLimitError):
        client.get_task("idphoto", "t1")
    assert len(slept) == 1 and MAX_RETRY_AFTER_S <= slept[0] <= MAX_RETRY_AFTER_S * 2
