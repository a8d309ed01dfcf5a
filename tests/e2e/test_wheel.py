"""The wheel as a user gets it: built from this checkout, installed into a fresh virtualenv outside it, and a
small user suite run there — the `picwish_mock` fixture through the pytest11 entry point, rules, the journal,
a client round trip and a typed failure. No network: the wheel installs with --no-index, and its dependencies
are seen from this environment's site-packages (whose .pth files, the checkout's path among them, are not read)."""

import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).with_name("user_suite")


def run(*command, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_outside_the_checkout_and_a_user_suite_passes(tmp_path):
    dist = tmp_path / "dist"
    # A copy of the checkout: building writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv*", ".git", ".local", "out", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".aws-sam"
        ),
    )
    run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, source)
    [wheel] = dist.glob("picwish-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "dependencies.pth").write_text(site.getsitepackages()[0] + "\n")

    suite = tmp_path / "user_project"
    shutil.copytree(SUITE, suite)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    help_text = run(venv / "bin" / "picwish-mock", "--help", env=env).stdout
    assert "--time-scale" in help_text and "--qps" in help_text
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=suite, env=env)
    assert "5 passed" in result.stdout, result.stdout
