"""Fetching a result: base64 already decoded, or a URL streamed under a host policy, a byte cap and a deadline."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .config import ClientSettings
from .errors import ResultDownloadError, ResultExpiredError
from .images import content_type, sniff_format
from .results import Output

# What object storage answers for a signed link that has expired (403) or a key that is gone (404, 410).
EXPIRED_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo): it is where the packets really go."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    inner = _embedded_ipv4(ip)
    return ip.is_global and (inner is None or inner.is_global)


def check_url_allowed(url: str, settings: ClientSettings, resolve=socket.getaddrinfo) -> str | None:
    """Refuse anything but the API's result hosts over HTTPS: no file://, no loopback, link-local or private
    addresses (a result URL is input from outside; fetching 169.254.169.254 would leak credentials).

    Returns the checked address to connect to (None for a host the configuration allows by name): resolving
    again to connect would let a resolver answer a public address to the check and a private one to the
    connection."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range, a broken IPv6 literal
        raise ResultDownloadError(f"result URL refused: {exc}") from None
    allowed_schemes = ("https", "http") if settings.allow_http_results else ("https",)
    if parts.scheme not in allowed_schemes:
        raise ResultDownloadError(f"result URL refused: scheme {parts.scheme!r} is not allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise ResultDownloadError("result URL refused: no host")
    netloc_host = f"{host}:{port}" if port else host
    if settings.result_hosts:
        if host not in settings.result_hosts and netloc_host not in settings.result_hosts:
            raise ResultDownloadError(f"result URL refused: host {host!r} is not an allowed result host")
        return None  # explicitly allowed by configuration, loopback included (the local stack's mock)
    try:
        addresses = [info[4][0] for info in resolve(host, port or 443)]
    except OSError:
        raise ResultDownloadError(f"result URL refused: host {host!r} does not resolve") from None
    if not addresses:
        raise ResultDownloadError(f"result URL refused: host {host!r} does not resolve")
    if not all(_public(address) for address in addresses):
        raise ResultDownloadError(f"result URL refused: host {host!r} resolves to a non-public address")
    return addresses[0].split("%")[0]


class _PinnedAdapter(HTTPAdapter):
    """Connects to one address that was already checked, while TLS still verifies the certificate of the URL's
    host name (SNI and hostname check use the name, not the address)."""

    def __init__(self, address: str, host: str):
        self._address, self._host = address, host
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params = {**host_params, "host": self._address}
        if host_params["scheme"] == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self._host, "assert_hostname": self._host}
        return host_params, pool_kwargs


def _wait_at_most(response: requests.Response, seconds: float) -> None:
    """Bound the next socket read: a server that sends one byte just inside the read timeout must not keep a
    download alive past its deadline."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def fetch_output(
    output: Output,
    settings: ClientSettings,
    *,
    deadline_s: float = 60.0,
    resolve=socket.getaddrinfo,
) -> Downloaded:
    """Bytes and content type of one output; a URL is streamed from the address that was checked, within a
    wall-clock deadline for the whole transfer, and never followed through a redirect."""
    if output.data is not None:
        return Downloaded(output.data, content_type(output.data))
    if not output.url:
        raise ResultDownloadError("the output has neither data nor a URL")
    address = check_url_allowed(output.url, settings, resolve)
    with requests.Session() as session:
        headers = {"Accept-Encoding": "identity"}
        if address is not None:
            parts = urlsplit(output.url)
            session.mount(f"{parts.scheme}://", _PinnedAdapter(address, parts.hostname or ""))
            headers["Host"] = parts.netloc.rpartition("@")[2]
        return _transfer(session, output.url, headers, settings, deadline_s)


def _transfer(session, url, headers, settings: ClientSettings, deadline_s: float) -> Downloaded:
    deadline = time.monotonic() + deadline_s
    try:
        response = session.get(
            url,
            headers=headers,
            stream=True,
            allow_redirects=False,
            timeout=(min(settings.connect_timeout_s, deadline_s), min(settings.read_timeout_s, deadline_s)),
        )
    except requests.RequestException as exc:
        raise ResultDownloadError(f"result download failed: {type(exc).__name__}") from None
    with response:
        if response.status_code in EXPIRED_STATUSES:
            raise ResultExpiredError(
                f"result link answered HTTP {response.status_code}: expired or gone", status=response.status_code
            )
        if 300 <= response.status_code < 400:
            raise ResultDownloadError(f"result URL refused: redirect (HTTP {response.status_code})")
        if response.status_code != 200:
            raise ResultDownloadError(f"result download answered HTTP {response.status_code}")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > settings.max_result_bytes:
            raise ResultDownloadError(f"result is {declared} bytes, over the cap of {settings.max_result_bytes}")
        chunks, size = [], 0
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ResultDownloadError(f"result download exceeded its {deadline_s:g} s deadline")
                _wait_at_most(response, min(settings.read_timeout_s, left))
                # read1 returns what one receive brings instead of waiting for a full chunk to fill
                chunk = response.raw.read1(256 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > settings.max_result_bytes:
                    raise ResultDownloadError(f"result exceeds the cap of {settings.max_result_bytes} bytes")
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ResultDownloadError(f"result download exceeded its {deadline_s:g} s deadline") from None
            raise ResultDownloadError(f"result download failed: {type(exc).__name__}") from None
    data = b"".join(chunks)
    # Every operation returns images (and clothing a ZIP): an HTML login page or an empty body is not a result.
    if sniff_format(data) is None:
        declared_type = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
        raise ResultDownloadError(f"the result is not an image or ZIP ({declared_type}, {len(data)} bytes)")
    return Downloaded(data, content_type(data))
