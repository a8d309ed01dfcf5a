"""The mock's command line: a port outside 0-65535 is refused by name, it names itself as it was started, and it
says which extra it needs instead of a traceback."""

import sys

import pytest

from mock_server import __main__ as command


@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_a_port_outside_the_range_is_an_error_naming_the_option(capsys, port):
    with pytest.raises(SystemExit) as stopped:
        command.parse_args(["--port", port])
    assert stopped.value.code == 2
    assert "argument --port: must be" in capsys.readouterr().err


def test_ports_zero_and_65535_are_taken():
    assert command.parse_args(["--port", "0"]).port == 0
    assert command.parse_args(["--port", "65535"]).port == 65535


def test_the_usage_line_names_the_console_script(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/picwish-mock", "--help"])
    with pytest.raises(SystemExit):
        command.parse_args(["--help"])
    assert capsys.readouterr().out.startswith("usage: picwish-mock ")
    monkeypatch.setattr(sys, "argv", ["/checkout/mock_server/__main__.py"])
    assert command._prog() == "python -m mock_server"


def test_without_the_mock_extra_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(command.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "argv", ["picwish-mock"])
    with pytest.raises(SystemExit) as stopped:
        command.main(["--help"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "picwish-mock: the mock server needs flask and waitress: pip install 'picwish-visual[mock]'\n"
    )


def test_version(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["picwish-mock"])
    with pytest.raises(SystemExit):
        command.parse_args(["--version"])
    assert capsys.readouterr().out.startswith("picwish-mock ")
