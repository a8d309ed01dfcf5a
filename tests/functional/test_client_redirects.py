"""The API key goes to the API host only: a redirect from it to another server is not followed (a 3xx is an
UnexpectedResponseError), proven with two real loopback servers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from picwish_visual import PicWishClient, UnexpectedResponseError
from picwish_visual.config import ClientSettings
from tests.support import images


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's `answer` (status, headers) and records what it received."""

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append(dict(self.headers))
        status, headers = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen, server.answer = [], (200, {})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_api_never_carries_the_key_elsewhere(servers, status):
    api, elsewhere = servers
    api.answer = (status, {"Location": f"http://127.0.0.1:{elsewhere.server_address[1]}/collect"})
    settings = ClientSettings(base_url=f"http://127.0.0.1:{api.server_address[1]}")
    client = PicWishClient("secret-key", settings=settings, max_retries=0)
    with pytest.raises(UnexpectedResponseError) as create:
        client.create_task("idphoto", images.portrait())
    with pytest.raises(UnexpectedResponseError):
        client.get_task("idphoto", "task1")
    assert create.value.status == status
    assert len(api.seen) == 2 and api.seen[0]["X-API-KEY"] == "secret-key"
    assert elsewhere.seen == []
