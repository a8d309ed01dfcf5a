"""Stopping a local command from outside (a CI timeout, `kill`): SIGTERM unwinds the way Ctrl-C does, so the mock
server and the Lambda sandboxes it started stop with it. Python's default for SIGTERM ends the process at once and
leaves its children running."""

from __future__ import annotations

import signal


def unwind_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _stopped)


def _stopped(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
