"""A pytest plugin for users' own tests: the `picwish_mock` fixture, a mock server in its own process.

Enable it with one line in a conftest.py: `pytest_plugins = ["mock_server.pytest_plugin"]`, then ask for the
`picwish_mock` fixture: it has `.url`, `.api_key`, and admin helpers (`add_rule`, `requests`, `credits`, `reset`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .launcher import RunningMock, start_mock

__all__ = ["RunningMock", "start_mock"]


@pytest.fixture(scope="session")
def picwish_mock_args() -> list[str]:
    """Override to start the mock with other options (e.g. `["--qps", "0", "--time-scale", "0.01"]`)."""
    return ["--qps", "0", "--time-scale", "0.02"]


@pytest.fixture(scope="session")
def picwish_mock_server(picwish_mock_args) -> Iterator[RunningMock]:
    mock = start_mock(*picwish_mock_args)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def picwish_mock(picwish_mock_server) -> RunningMock:
    """The session's mock, reset before each test so tests are isolated."""
    picwish_mock_server.reset()
    return picwish_mock_server
