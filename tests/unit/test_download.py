"""Result download: base64 passthrough, the host policy, redirects, expiry and the byte cap."""

import pytest
import responses

from picwish_visual import ClientSettings, Output, ResultDownloadError, ResultExpiredError, fetch_output
from tests.support import images

PNG = images.photo(8, 8, fmt="PNG")
SETTINGS = ClientSettings(result_hosts=("res.test",), max_result_bytes=10_000)


def public(host, port):
    return [(2, 1, 6, "", ("93.184.216.34", port))]


def private(host, port):
    return [(2, 1, 6, "", ("10.0.0.7", port))]


def test_data_output_needs_no_network():
    got = fetch_output(Output(data=PNG), SETTINGS)
    assert (got.data, got.content_type) == (PNG, "image/png")


@responses.activate
def test_url_output_streams_and_sniffs_the_type():
    responses.get("https://res.test/r.png", body=PNG, content_type="application/octet-stream")
    got = fetch_output(Output(url="https://res.test/r.png"), SETTINGS)
    assert (got.data, got.content_type) == (PNG, "image/png")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://res.test/r.png", "scheme 'http' is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("https://evil.test/r.png", "host 'evil.test' is not an allowed result host"),
        ("https://169.254.169.254/latest", "host '169.254.169.254' is not an allowed result host"),
    ],
)
def test_policy_refuses(url, message):
    with pytest.raises(ResultDownloadError, match=message):
        fetch_output(Output(url=url), SETTINGS)


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "[::1]"])
def test_without_allowlist_non_public_addresses_are_refused(host):
    with pytest.raises(ResultDownloadError, match="non-public address"):
        fetch_output(
            Output(url=f"https://{host}/r.png"),
            ClientSettings(),
            resolve=lambda h, p: [(0, 0, 0, "", (h.strip("[]"), p))],
        )


def test_without_allowlist_a_name_resolving_to_private_is_refused():
    with pytest.raises(ResultDownloadError, match="non-public"):
        fetch_output(Output(url="https://sneaky.test/r.png"), ClientSettings(), resolve=private)


@responses.activate
def test_without_allowlist_public_https_is_fetched():
    responses.get("https://cdn.test/r.png", body=PNG)
    assert fetch_output(Output(url="https://cdn.test/r.png"), ClientSettings(), resolve=public).data == PNG


def test_local_stack_may_allow_http_loopback():
    settings = ClientSettings(result_hosts=("127.0.0.1:8080",), allow_http_results=True)
    with responses.RequestsMock() as mock:
        mock.get("http://127.0.0.1:8080/r.png", body=PNG)
        assert fetch_output(Output(url="http://127.0.0.1:8080/r.png"), settings).data == PNG


@responses.activate
@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_link(status):
    responses.get("https://res.test/r.png", status=status, body="<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(ResultExpiredError) as info:
        fetch_output(Output(url="https://res.test/r.png"), SETTINGS)
    assert info.value.status == status


@responses.activate
def test_redirect_is_refused():
    responses.get("https://res.test/r.png", status=302, headers={"Location": "http://169.254.169.254/"})
    with pytest.raises(ResultDownloadError, match="redirect"):
        fetch_output(Output(url="https://res.test/r.png"), SETTINGS)


@responses.activate
def test_byte_cap():
    responses.get("https://res.test/big", body=b"\0" * 10_001)
    with pytest.raises(ResultDownloadError, match="cap"):
        fetch_output(Output(url="https://res.test/big"), SETTINGS)


@responses.activate
def test_server_error():
    responses.get("https://res.test/r.png", status=500)
    with pytest.raises(ResultDownloadError, match="HTTP 500"):
        fetch_output(Output(url="https://res.test/r.png"), SETTINGS)
