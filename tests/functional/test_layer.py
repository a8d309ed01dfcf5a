"""What deploys is what was tested: the layer's requirements pin every package `sam build` installs, at the
versions installed here; and the layer assembled from exactly those packages (and the layer's own code) imports
every handler in an interpreter that sees nothing else — not this virtualenv, not the checkout."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from offline import runtime_packages

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("submit", "create", "poll", "finalize", "record_failure", "backstop")
# Lambda's Python 3.12 on Linux: the environment the layer's markers are judged in.
LAMBDA_MARKERS = {
    **default_environment(),
    "python_version": "3.12",
    "sys_platform": "linux",
    "platform_system": "Linux",
}


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "shared" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", f"{line}: the layer pins exact versions"
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def closure(names: list[str]) -> set[str]:
    """Every distribution pip installs for `names`, extras and markers judged as on Lambda."""
    found = runtime_packages.closure([Requirement(name) for name in names], LAMBDA_MARKERS)
    return {canonicalize_name(dist.metadata["Name"]) for dist in found}


def test_the_layer_pins_every_package_it_installs_at_the_version_tested():
    pinned = pins()
    assert closure(list(pinned)) == set(pinned), "a dependency of the layer is not pinned (or a pin is not needed)"
    for name, version in pinned.items():
        assert metadata.version(name) == version, (
            f"{name}: the layer pins {version}, the tests ran {metadata.version(name)}"
        )


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> str:
    """The layer's path as `sam build` fills it: its code, then exactly the pinned packages (linked from this
    virtualenv, as the local Lambda service links them)."""
    pinned = [Requirement(f"{name}=={version}") for name, version in pins().items()]
    linked = runtime_packages.LinkedPackages(tmp_path_factory.mktemp("layer"))
    packages = linked.folder(runtime_packages.closure(pinned, LAMBDA_MARKERS))
    return os.pathsep.join([str(ROOT / "shared"), packages])


RUN = """
import json, os, sys
sys.path[:0] = [sys.argv[1], *sys.argv[2].split(os.pathsep)]
import app

class Context:
    function_name = "picwish-" + sys.argv[3]
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "req-1"

event = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
print(json.dumps(app.lambda_handler(event, Context()) if event is not None else "imported"))
"""


def run_alone(layer: str, function: str, event: dict | None = None) -> object:
    """The handler in an interpreter without site-packages (-S) or the environment's paths (-I)."""
    env = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}
    env.update(POWERTOOLS_SERVICE_NAME="picwish-pipeline", POWERTOOLS_METRICS_NAMESPACE="PicWishPipeline")
    env.update(OUTPUT_BUCKET="picwish-output", STATE_MACHINE_ARN="arn:aws:states:us-east-1:1:stateMachine:p")
    args = [sys.executable, "-I", "-S", "-c", RUN, str(ROOT / "functions" / function), layer, function]
    done = subprocess.run([*args, *([json.dumps(event)] if event else [])], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_handler_imports_from_the_built_layer_alone(layer, function):
    assert run_alone(layer, function) == "imported"


def test_handlers_run_from_the_built_layer_alone(layer):
    test_event = json.loads((ROOT / "events" / "s3-test-event.json").read_text())
    assert run_alone(layer, "submit", test_event) == {"started": 0, "duplicate": 0, "rejected": 0, "ignored": 1}
    failed = json.loads((ROOT / "events" / "eventbridge-execution-failed.json").read_text())
    failed["detail"]["input"] = "{}"  # an execution without a job: nothing to record, nothing called
    assert run_alone(layer, "backstop", failed) == {"status": "ignored"}
