"""picwish-ops' command line: it names itself as it was started, says its version, takes the stack before or
after the subcommand, and says which extra it needs instead of a traceback."""

import sys
from pathlib import Path

import pytest

from ops import __main__ as command


@pytest.mark.parametrize(
    "argv",
    [
        ["--local", "status", "--since", "1h"],
        ["status", "--since", "1h", "--local"],
        ["status", "--local", "--since", "1h"],
    ],
)
def test_the_stack_may_come_before_or_after_the_subcommand(argv):
    args = command.parse_args(argv)
    assert (args.command, args.local, args.stack) == ("status", True, None)


def test_a_deployed_stack_after_the_subcommand_with_its_region():
    args = command.parse_args(["redrive", "--stack", "Catalog-Prod", "--region", "eu-west-1", "--yes"])
    assert (args.local, args.stack, args.region, args.yes) == (False, "Catalog-Prod", "eu-west-1", True)


def test_the_stack_file_follows_the_subcommand_too(tmp_path):
    args = command.parse_args(["status", "--local", "--stack-file", str(tmp_path / "s.json")])
    assert args.stack_file == tmp_path / "s.json"
    assert command.parse_args(["--local", "status"]).stack_file == command.LOCAL_INFO


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status"], "say which stack: --local (the local stack) or --stack NAME (a deployed one)"),
        (["--local", "status", "--stack", "x"], "argument --stack: not allowed with argument --local"),
    ],
)
def test_which_stack_is_asked_for_by_name(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        command.parse_args(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_usage_line_and_version_name_the_console_script(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/picwish-ops"])
    with pytest.raises(SystemExit):
        command.parse_args(["--version"])
    assert capsys.readouterr().out.startswith("picwish-ops ")
    with pytest.raises(SystemExit):
        command.parse_args(["--help"])
    assert capsys.readouterr().out.startswith("usage: picwish-ops ")


def test_without_boto3_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(command.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "argv", ["picwish-ops"])
    assert command.main(["--local", "status"]) == 2
    assert capsys.readouterr().err == "picwish-ops: it talks to AWS through boto3: pip install 'picwish-visual[ops]'\n"


def test_the_local_stack_file_is_the_checkouts_when_run_from_one():
    assert Path(command.__file__).resolve().parents[1] / ".local" / "stack.json" == command.LOCAL_INFO
