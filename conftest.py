"""Root conftest: enables the mock's pytest plugin, exactly as a user's own conftest.py would."""

pytest_plugins = ["mock_server.pytest_plugin"]
