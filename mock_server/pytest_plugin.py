"""A pytest plugin for users' own tests: the `picwish_mock` fixture, a mock server in its own process.

Installed with the wheel, pytest loads it through its entry point; in this checkout, one line in a conftest.py:
`pytest_plugins = ["mock_server.pytest_plugin"]`. The fixture has `.url`, `.api_key`, and admin helpers
(`add_rule`, `requests`, `credits`, `reset`). Loading the plugin imports neither Flask nor the server: a project
with the client only keeps a working pytest, and the fixture says what to install when it is asked for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from .__main__ import EXTRA_HINT, NEEDS
from .launcher import RunningMock, start_mock

__all__ = ["RunningMock", "start_mock"]


@pytest.fixture(scope="session")
def picwish_mock_args() -> list[str]:
    """Override to start the mock with other options (e.g. `["--qps", "0", "--time-scale", "0.01"]`)."""
    return ["--qps", "0", "--time-scale", "0.02"]


@pytest.fixture(scope="session")
def picwish_mock_server(picwish_mock_args) -> Iterator[RunningMock]:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"the picwish_mock fixture runs the mock server, which needs {' and '.join(missing)}: {EXTRA_HINT}",
            pytrace=False,
        )
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
