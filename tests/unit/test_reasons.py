"""The failure reasons are a contract: the README lists every one, and every step records one of them."""

import json
import re
from pathlib import Path

from picwish_pipeline.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_lists_every_failure_reason():
    readme = ROOT.joinpath("README.md").read_text()
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in readme]
    assert missing == []


def test_no_step_writes_a_reason_as_a_bare_string():
    # A reason typed by hand can drift from the list users filter on: every one goes through Reason.
    values = "|".join(re.escape(reason.value) for reason in Reason if reason.value != "timeout")
    pattern = re.compile(rf'(reason=|_failed\([^)]*, )"({values})"')
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for folder in ("shared/picwish_pipeline", "ops")
        for path in ROOT.joinpath(folder).rglob("*.py")
        for match in pattern.finditer(path.read_text())
    ]
    assert offenders == []


def test_a_reason_is_its_string_in_json_and_the_backstop_s_follow_the_execution_status():
    assert json.dumps({"reason": Reason.AMBIGUOUS_CREATE}) == '{"reason": "ambiguous create"}'
    assert Reason.of_execution("TIMED_OUT") == Reason.EXECUTION_TIMED_OUT
