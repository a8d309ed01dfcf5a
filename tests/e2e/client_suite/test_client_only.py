"""A user's own tests in a project that installed the client only: pytest must load, and the client work."""

import pytest

from picwish_visual import PicWishClient, ValidationError


def test_the_client_refuses_bad_input_before_any_request():
    client = PicWishClient("a-key", base_url="http://127.0.0.1:9")  # nothing listens: nothing may be sent
    with pytest.raises(ValidationError, match="size: must be"):
        client.create_task("idphoto", ("me.jpg", b"\xff\xd8 not read"), {"size": "300X400"})


def test_the_mock_fixture_says_what_it_needs_without_the_mock_extra(request):
    with pytest.raises(pytest.fail.Exception, match=r"pip install 'picwish-visual\[mock\]'"):
        request.getfixturevalue("picwish_mock")
