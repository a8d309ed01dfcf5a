"""What each package may import: the API client nothing of AWS or the pipeline, the tools no test framework."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_by(*modules: str) -> set[str]:
    """Top-level packages loaded by importing `modules` in a fresh interpreter (this one has pytest loaded)."""
    listing = "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    code = f"import sys\nfor m in {list(modules)!r}: __import__(m)\n{listing}"
    env_path = f"{ROOT / 'shared'}:{ROOT}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": env_path}
    )
    return set(out.stdout.split())


def test_the_local_stack_the_benchmarks_and_the_mock_launcher_run_without_pytest():
    loaded = imported_by("offline.__main__", "bench.__main__", "bench.mock_load", "mock_server.launcher")
    assert "pytest" not in loaded and "_pytest" not in loaded


def test_the_api_client_imports_nothing_of_aws_or_the_pipeline():
    client_modules = sorted(f"picwish_visual.{p.stem}" for p in (ROOT / "shared" / "picwish_visual").glob("*.py"))
    loaded = imported_by("picwish_visual", *client_modules)
    assert {"picwish_visual", "requests", "urllib3"} <= loaded
    assert not loaded & {"boto3", "botocore", "aws_lambda_powertools", "picwish_pipeline", "mock_server", "flask"}


def test_every_step_of_the_pipeline_loads_from_the_layer_alone():
    steps = ("submit", "create", "poll", "finalize", "failures", "backstop", "runtime")
    loaded = imported_by(*(f"picwish_pipeline.{s}" for s in steps))
    assert not loaded & {"mock_server", "offline", "bench", "tests", "pytest"}
