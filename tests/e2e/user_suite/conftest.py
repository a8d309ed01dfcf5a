"""A user's own contract suite, as it would sit in their repository: the wheel installed, no `pytest_plugins`
line (the `picwish_mock` fixture comes from the wheel's pytest11 entry point)."""

import pytest


@pytest.fixture(scope="session")
def picwish_mock_args():
    return ["--qps", "0", "--time-scale", "0.01"]
