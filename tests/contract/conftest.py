"""Contract tier: the `picwish_visual` client against a target — the mock in its own process by default, or the real
API when PICWISH_API_KEY is set (PICWISH_BASE_URL optional); mock-only cases are skipped there."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from mock_server.launcher import RunningMock
from picwish_visual import ClientSettings, PicWishClient, TaskResult
from picwish_visual.config import ENV_API_KEY
from tests.support.fileserver import FileServer

REAL_KEY = os.environ.get(ENV_API_KEY)


@dataclass
class Target:
    mock: RunningMock | None
    api_key: str
    settings: ClientSettings

    @property
    def is_mock(self) -> bool:
        return self.mock is not None

    def client(self, prefer: str | None = None, **kw) -> PicWishClient:
        client = PicWishClient(self.api_key, settings=self.settings, **kw)
        if prefer:
            if not self.is_mock:
                pytest.skip("forcing outcomes needs the mock")
            client.session.headers["Prefer"] = prefer
        return client

    def wait(self, client: PicWishClient, operation: str, task_id: str, timeout_s: float = 200) -> TaskResult:
        """Poll as the docs recommend (every second on the real API; faster on the time-scaled mock)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = client.get_task(operation, task_id)
            if result.is_done or time.monotonic() > deadline:
                return result
            time.sleep(0.05 if self.is_mock else 1.0)


@pytest.fixture(scope="session")
def picwish_mock_args():
    return ["--qps", "0", "--time-scale", "0.01"]


@pytest.fixture
def target(request) -> Target:
    if REAL_KEY:
        return Target(None, REAL_KEY, ClientSettings.from_env())
    mock = request.getfixturevalue("picwish_mock")
    settings = ClientSettings(base_url=mock.url, result_hosts=("127.0.0.1",), allow_http_results=True)
    return Target(mock, mock.api_key, settings)


@pytest.fixture
def mock_target(target) -> Target:
    if not target.is_mock:
        pytest.skip("mock-only case")
    return target


@pytest.fixture(scope="session")
def files():
    with FileServer() as server:
        yield server
