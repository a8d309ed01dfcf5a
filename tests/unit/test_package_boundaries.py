"""What each package may import: the API client nothing of AWS or the pipeline, the tools no test framework."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_by(*modules: str) -> set[str]:
    """Top-level packages loaded by importing `modules` in a fresh interpreter (this one has pytest loaded)."""
    code = f"import sys\nfor m in {list(modules)!r}: __import__(m)\nprint(' '.join(sorted({{n.split('.')[0] for n in sys.modules}})))"
    env_path = f"{ROOT / 'shared'}:{ROOT}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": env_path}
    )
    return set(out.stdout.split())


def test_the_local_stack_the_benchmarks_and_the_mock_launcher_run_without_pytest():
    loaded = imported_by("offline.__main__", "bench.__main__", "bench.mock_load", "mock_server.launcher")
    assert "pytest" not in loaded and "_pytest" not in loaded
