"""Result downloads against real loopback servers: the whole transfer keeps a wall-clock deadline (a server that
dribbles or stalls cannot hold it), and a connection pinned to the checked address still verifies TLS by name."""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from picwish_visual import ClientSettings, Output, ResultDownloadError, fetch_output
from picwish_visual import download as download_module
from tests.support import images

PNG = images.photo(16, 16, fmt="PNG")


class Slow(BaseHTTPRequestHandler):
    """Sends headers for a PNG at once, then the server's `plan`: ('dribble', n) one byte every 0.1 s for n bytes,
    ('stall', s) nothing for s seconds, ('whole', None) the PNG."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.hosts.append(self.headers.get("Host"))
        kind, amount = self.server.plan
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        try:
            if kind == "dribble":
                for byte in PNG[:amount]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            elif kind == "stall":
                time.sleep(amount)
            else:
                self.wfile.write(PNG)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, *args):
        pass


def _serve(server):
    server.hosts = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def slow():
    server = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Slow))
    yield server
    server.shutdown()
    server.server_close()


def _local(server, **overrides):
    port = server.server_address[1]
    settings = ClientSettings(result_hosts=(f"127.0.0.1:{port}",), allow_http_results=True, **overrides)
    return f"http://127.0.0.1:{port}/r.png", settings


@pytest.mark.parametrize("plan", [("dribble", 40), ("stall", 5)], ids=["one byte every 0.1 s", "stalls 5 s"])
def test_a_slow_server_cannot_hold_a_download_past_its_deadline(slow, plan):
    slow.plan = plan
    url, settings = _local(slow, read_timeout_s=30.0)
    started = time.monotonic()
    with pytest.raises(ResultDownloadError, match="exceeded its 1 s deadline"):
        fetch_output(Output(url=url), settings, deadline_s=1.0)
    assert time.monotonic() - started < 1.8


def test_a_prompt_server_is_fetched_whole(slow):
    slow.plan = ("whole", None)
    url, settings = _local(slow)
    assert fetch_output(Output(url=url), settings, deadline_s=1.0).data == PNG


@pytest.fixture
def tls_server(tmp_path, request):
    """An HTTPS server on 127.0.0.1 whose certificate names `request.param`, signed by a test CA."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(request.param).configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.plan = ("whole", None)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield _serve(server), str(bundle)
    server.shutdown()
    server.server_close()


def _as_if_public(monkeypatch, bundle):
    # The pinned path is taken only for addresses the policy found public; loopback stands in for one here.
    monkeypatch.setattr(download_module, "_public", lambda address: True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)


@pytest.mark.parametrize("tls_server", ["res.test"], indirect=True)
def test_a_pinned_connection_verifies_the_certificate_of_the_name(tls_server, monkeypatch):
    server, bundle = tls_server
    _as_if_public(monkeypatch, bundle)
    port = server.server_address[1]
    lookups = []

    def resolve(host, port_):
        lookups.append(host)
        return [(2, 1, 6, "", ("127.0.0.1", port_))]

    got = fetch_output(Output(url=f"https://res.test:{port}/r.png"), ClientSettings(), resolve=resolve)
    assert got.data == PNG
    assert lookups == ["res.test"]
    assert server.hosts == [f"res.test:{port}"]


@pytest.mark.parametrize("tls_server", ["other.test"], indirect=True)
def test_a_pinned_connection_refuses_a_certificate_for_another_name(tls_server, monkeypatch):
    server, bundle = tls_server
    _as_if_public(monkeypatch, bundle)
    port = server.server_address[1]
    with pytest.raises(ResultDownloadError, match="result download failed: SSLError"):
        fetch_output(
            Output(url=f"https://res.test:{port}/r.png"),
            ClientSettings(),
            resolve=lambda host, port_: [(2, 1, 6, "", ("127.0.0.1", port_))],
        )
