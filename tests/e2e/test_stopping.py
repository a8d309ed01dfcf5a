"""A local command stopped from outside (SIGTERM: a CI timeout, `kill`) stops the processes it started — the mock
server and the Lambda sandboxes — as Ctrl-C does, instead of leaving them running without a parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "bench": ["bench", "--n", "8", "--qps", "4", "--small-images", "--json-only"],
    "demo": ["offline", "demo", "--time-scale", "1"],
}


def children(pid: int) -> dict[int, str]:
    """The live processes whose parent is `pid`, with their command lines (a zombie has none: it has exited)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if ppid == pid and command:
                found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_stopped_with_sigterm_stops_its_mock_server_and_sandboxes(command, tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    started = subprocess.Popen(
        [sys.executable, "-m", *COMMANDS[command], *(["--out", str(tmp_path)] if command == "demo" else [])],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the mock serves and a function runs in a sandbox
            running = children(started.pid)
            if any("mock_server" in c for c in running.values()) and any("sandbox" in c for c in running.values()):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"{command} never had its mock server and a sandbox running")
        started.send_signal(signal.SIGTERM)
        code = started.wait(timeout=60)
        stopping = time.monotonic() + 10  # a child told to stop may take a moment
        while any(alive(pid) for pid in running) and time.monotonic() < stopping:
            time.sleep(0.1)
        assert {pid: command for pid, command in running.items() if alive(pid)} == {}
        assert code == 128 + signal.SIGTERM  # stopped, as a shell reports a command ended by SIGTERM
    finally:  # whatever the outcome, nothing of this test outlives it
        started.kill()
        for pid in [pid for pid in running if alive(pid)]:
            os.kill(pid, signal.SIGKILL)
