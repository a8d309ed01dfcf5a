"""The wheel as a user gets it: built from this checkout and installed into fresh virtualenvs outside it that see
nothing but what the install would bring — the client's dependencies (client only) or those of the `mock` extra
too — and the user's pytest. A client-only install must leave the user's pytest suite working; with the mock,
the `picwish_mock` fixture (the pytest11 entry point) serves a small user suite. No network: the wheel installs
with --no-index, and each dependency is linked from this environment's site-packages, nothing else of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from offline.runtime_packages import LinkedPackages, closure, requirements

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
CLIENT = "requests>=2.32,<3\npillow>=11,<14\n"  # pyproject.toml's dependencies
MOCK = "flask>=3.1,<4\nwaitress>=3,<4\n"  # ... and its `mock` extra's
USERS_OWN = "pytest\n"


def run(*command, cwd=None, env=None, timeout=300, ok=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv*", ".git", ".local", "out", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".aws-sam"
        ),
    )
    run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", tmp / "dist", source)
    [built] = (tmp / "dist").glob("picwish_visual-*.whl")
    return built


def user_venv(tmp_path: Path, wheel: Path, dependencies: str) -> tuple[Path, dict[str, str]]:
    """A virtualenv with the wheel and exactly the closure of `dependencies`; its python and environment."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    linked = LinkedPackages(tmp_path / "links").folder(closure(requirements(dependencies)))
    Path(purelib, "dependencies.pth").write_text(linked + "\n")
    return python, {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}


def test_a_client_only_install_leaves_the_users_pytest_working(tmp_path, wheel):
    python, env = user_venv(tmp_path, wheel, CLIENT + USERS_OWN)
    assert run(python, "-c", "import flask", env=env, ok=False).returncode == 1  # nothing else is in reach
    suite = tmp_path / "user_project"
    shutil.copytree(HERE / "client_suite", suite)
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=suite, env=env)
    assert "2 passed" in result.stdout, result.stdout
    # The mock's command says what it needs instead of a traceback.
    refused = run(tmp_path / "venv" / "bin" / "picwish-mock", "--help", env=env, ok=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "pip install 'picwish-visual[mock]'" in refused.stderr


def test_with_the_mock_extra_the_fixture_serves_a_users_suite(tmp_path, wheel):
    python, env = user_venv(tmp_path, wheel, CLIENT + MOCK + USERS_OWN)
    help_text = run(tmp_path / "venv" / "bin" / "picwish-mock", "--help", env=env).stdout
    assert "--time-scale" in help_text and "--qps" in help_text and "usage: picwish-mock" in help_text
    suite = tmp_path / "user_project"
    shutil.copytree(HERE / "user_suite", suite)
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=suite, env=env)
    assert "6 passed" in result.stdout, result.stdout


def test_the_wheel_ships_only_names_of_its_own_with_its_own_description(wheel):
    # `picwish` (a scraper) and `mock_server` (mock-server) are other projects' import names on PyPI: installing
    # either beside this wheel would overwrite one package with the other.
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(meta).decode()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entries = archive.read(entry_points).decode()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"picwish_visual", "picwish_visual_mock", "picwish_visual_ops", "picwish_pipeline"}
    assert "Name: picwish-visual\n" in metadata and "License-Expression: MIT\n" in metadata
    assert "Classifier: Framework :: Pytest" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "# picwish-visual" in metadata and "Performance" not in metadata  # docs/wheel.md, not the README
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "picwish_visual = picwish_visual_mock.pytest_plugin" in entries
    assert "picwish-ops = picwish_visual_ops.__main__:main" in entries
