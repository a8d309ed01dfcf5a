"""The failure reasons are a contract: the README lists every one, and every step records one of them."""

import ast
import json
from pathlib import Path

from picwish_pipeline.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_lists_every_failure_reason():
    readme = ROOT.joinpath("README.md").read_text()
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in readme]
    assert missing == []


def string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_step_writes_a_reason_as_a_bare_string():
    # A reason typed by hand can drift from the list users filter on: every one goes through Reason. ("timeout"
    # is also the name of the poll's phase, which is not a reason.)
    values = {reason.value for reason in Reason} - {"timeout"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for folder in ("shared/picwish_pipeline", "ops")
        for path in ROOT.joinpath(folder).rglob("*.py")
        if path.name != "reasons.py"
        for line, text in string_constants(path)
        if text in values
    ]
    assert offenders == []


def test_a_reason_is_its_string_in_json_and_the_backstop_s_follow_the_execution_status():
    assert json.dumps({"reason": Reason.AMBIGUOUS_CREATE}) == '{"reason": "ambiguous create"}'
    assert Reason.of_execution("TIMED_OUT") == Reason.EXECUTION_TIMED_OUT
