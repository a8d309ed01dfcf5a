"""Start the mock as a real server in its own process on a free loopback port, and talk to its scenario API:
what the pytest plugin, the local stack and the benchmarks share."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from picwish_visual.config import ClientSettings

_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningMock:
    url: str
    api_key: str
    process: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def _admin(self, method: str, path: str, **kw: Any) -> Any:
        response = self.session.request(method, f"{self.url}/__mock__/{path}", timeout=10, **kw)
        response.raise_for_status()
        return response.json()

    def client_settings(self) -> ClientSettings:
        """`picwish_visual` client settings for this mock: its URL, and its plain-HTTP loopback result links allowed (a
        client refuses both by default: results come from public HTTPS hosts)."""
        return ClientSettings(base_url=self.url, result_hosts=(urlsplit(self.url).netloc,), allow_http_results=True)

    def reset(self) -> None:
        self._admin("POST", "reset")

    def add_rule(self, **rule: Any) -> dict[str, Any]:
        return self.add_rules([rule])[0]

    def add_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._admin("POST", "rules", json=rules)["rules"]

    def rules(self) -> list[dict[str, Any]]:
        return self._admin("GET", "rules")["rules"]

    def clear_rules(self) -> None:
        self._admin("DELETE", "rules")

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        return self._admin("GET", "requests", params=filters)["requests"]

    def set_chaos(self, **rates: float) -> dict[str, Any]:
        return self._admin("POST", "chaos", json=rates)["chaos"]

    def task_times(self) -> dict[str, Any]:
        return self._admin("GET", "tasks")["tasks"]

    def credits(self) -> dict[str, Any]:
        return self._admin("GET", "credits")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_mock(*args: str, api_key: str = "mock-key-1", timeout_s: float = 30.0) -> RunningMock:
    """Start this package's server (`python -m <package>`) on a free port, its scenario API on, and wait for its
    ready line."""
    env = dict(os.environ)
    if (
        _ROOT / "shared" / "picwish_visual"
    ).is_dir():  # a checkout; installed from the wheel, the packages are on the path
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "shared"), str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    server = [sys.executable, "-m", str(__package__), "--host", "127.0.0.1", "--port", "0", "--admin"]
    command = [*server, "--api-key", api_key, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    output = process.stdout
    assert output is not None  # stdout=PIPE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = output.readline()
        if line.startswith("PicWish mock listening on "):
            url = line.split()[4]
            # Keep draining stdout so the child never blocks on a full pipe.
            output.close()
            return RunningMock(url=url, api_key=api_key, process=process)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the mock server did not start")
