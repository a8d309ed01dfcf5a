"""Result downloads refuse what hides a private address or is no result, and every failure is a
ResultDownloadError; a call that never left (DNS) is "not sent"."""

import ipaddress
import socket

import pytest
import responses

from picwish_visual import APIConnectionError, ClientSettings, Output, PicWishClient, ResultDownloadError, fetch_output
from picwish_visual.download import check_url_allowed
from tests.support import images

OPEN = ClientSettings()  # any public HTTPS host


def resolving_to(address):
    return lambda host, port: [(10, 1, 6, "", (address, port, 0, 0))]


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the metadata address
        "64:ff9b::a00:7",  # NAT64 of 10.0.0.7
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    ],
)
def test_ipv4_inside_ipv6_is_judged_by_its_ipv4(address):
    with pytest.raises(ResultDownloadError, match="non-public address"):
        check_url_allowed("https://res.example/r.png", OPEN, resolve=resolving_to(address))


def test_a_public_ipv6_address_is_allowed_and_the_connection_goes_to_it():
    checked = check_url_allowed("https://res.example/r.png", OPEN, resolve=resolving_to("2606:4700::6810:84e5"))
    assert checked == "2606:4700::6810:84e5"


@pytest.mark.parametrize("url", ["https://res.example:99999/r.png", "https://res.example:-1/r.png", "https://[::1/r"])
def test_a_malformed_url_is_a_download_error(url):
    with pytest.raises(ResultDownloadError, match="result URL refused"):
        fetch_output(Output(url=url), OPEN, resolve=resolving_to("2606:4700::6810:84e5"))


@responses.activate
@pytest.mark.parametrize(("body", "content_type"), [(b"<html>login</html>", "text/html"), (b"", "image/png")])
def test_a_body_that_is_no_image_is_not_a_result(body, content_type):
    responses.get("https://res.test/r.png", body=body, content_type=content_type)
    settings = ClientSettings(result_hosts=("res.test",))
    with pytest.raises(ResultDownloadError, match="not an image or ZIP"):
        fetch_output(Output(url="https://res.test/r.png"), settings)


@responses.activate
def test_a_real_result_still_passes():
    responses.get("https://res.test/r.png", body=images.photo(fmt="PNG"), content_type="image/png")
    assert fetch_output(Output(url="https://res.test/r.png"), ClientSettings(result_hosts=("res.test",))).data


def test_a_name_that_does_not_resolve_was_never_sent(monkeypatch):
    def no_such_host(*_args, **_kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    client = PicWishClient("key", settings=ClientSettings(base_url="https://api.invalid"), max_retries=0)
    with pytest.raises(APIConnectionError) as failed:
        client.create_task("idphoto", images.portrait())
    assert failed.value.request_sent is False


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """A resolver that answers a public address to the check and loopback to a second lookup must not win:
    the host is resolved once and the connection goes to the checked address."""
    lookups, connects = [], []

    def rebinding(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
        except ValueError:
            lookups.append(host)
            address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def record(sock, address):
        connects.append(address)
        raise ConnectionRefusedError("refused in the unit tier")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket.socket, "connect", record)
    with pytest.raises(ResultDownloadError, match="result download failed"):
        fetch_output(Output(url="https://res.example/r.png"), OPEN, resolve=rebinding)
    assert lookups == ["res.example"]
    assert connects == [("93.184.216.34", 443)]
