"""The local Lambda service runs functions as Lambda does: a process per sandbox, one invocation at a time,
reused while warm, a timed cold start when all are busy, throttled past the concurrency, and killed past the
timeout or the memory size. Driven with small functions of its own, so each behaviour is seen directly."""

from __future__ import annotations

import importlib.metadata as metadata
import io
import json
import threading
import time
import zipfile
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from offline.lambdas import LambdaRuntime

HANDLER = """
import os, time
time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
calls = 0

def handler(event, context):
    global calls
    calls += 1
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("allocate_mb"):
        hog = bytearray(event["allocate_mb"] * 1024 * 1024)
        hog[::4096] = b"x" * len(hog[::4096])
    return {"pid": os.getpid(), "calls": calls, "mark": os.environ.get("MARK"),
            "remaining_ms": context.get_remaining_time_in_millis()}
"""


def function(name, *, timeout=3, memory=128, concurrency=None, source=HANDLER, **environment):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return SimpleNamespace(
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        version="$LATEST",
        handler="app.handler",
        code_bytes=buffer.getvalue(),
        account_id="123456789012",
        region="us-east-1",
        layers=[],
        memory_size=memory,
        timeout=timeout,
        reserved_concurrency=concurrency,
        environment_vars=environment,
    )


@pytest.fixture
def runtime(tmp_path):
    with LambdaRuntime(tmp_path).installed() as running:
        yield running


def call(runtime, fn, event=None):
    payload, errored, _ = runtime.invoke(fn, json.dumps(event or {}))
    return json.loads(payload), errored


def test_a_warm_sandbox_is_reused_and_keeps_its_module_state(runtime):
    fn = function("warm")
    first, second = call(runtime, fn)[0], call(runtime, fn)[0]
    assert first["pid"] == second["pid"] and (first["calls"], second["calls"]) == (1, 2)
    assert [i.cold_start_ms is not None for i in runtime.invocations] == [True, False]


def test_a_busy_sandbox_means_a_cold_start_in_a_new_process(runtime):
    fn = function("busy", INIT_SLEEP="0.3")
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(runtime, fn, {"sleep": 0.5})[0])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["pid"] for r in results}) == 2 and all(r["calls"] == 1 for r in results)
    assert len(runtime.cold_starts) == 2 and all(ms >= 300 for _, ms in runtime.cold_starts)  # the init, timed


def test_each_function_sees_only_its_own_environment(runtime):
    mine, other = call(runtime, function("mine", MARK="a"))[0], call(runtime, function("other"))[0]
    assert (mine["mark"], other["mark"]) == ("a", None) and mine["pid"] != other["pid"]
    assert 0 < mine["remaining_ms"] <= 3000


def test_past_its_concurrency_an_invocation_is_throttled(runtime):
    fn = function("one-at-a-time", concurrency=1)
    holder = threading.Thread(target=call, args=(runtime, fn, {"sleep": 1.0}))
    holder.start()
    time.sleep(0.5)  # the one sandbox is busy (its cold start is done well within this)
    body, errored = call(runtime, fn)
    holder.join()
    assert errored and body["errorType"] == "Lambda.TooManyRequestsException"


def test_a_function_past_its_timeout_is_killed(runtime):
    fn = function("slow", timeout=1)
    started = time.monotonic()
    body, errored = call(runtime, fn, {"sleep": 5})
    assert errored and body == {"errorMessage": "Task timed out after 1.00 seconds", "errorType": "Lambda.Unknown"}
    assert time.monotonic() - started < 3
    again, _ = call(runtime, fn)
    assert again["calls"] == 1  # the killed sandbox is gone: a fresh one started


def test_a_function_past_its_memory_is_killed(runtime):
    body, errored = call(runtime, function("greedy", memory=128), {"allocate_mb": 400, "sleep": 2})
    assert errored and body["errorType"] == "Lambda.Unknown"
    assert body["errorMessage"].startswith("Runtime exited with error: signal: killed")


def test_an_init_that_fails_is_a_service_error_and_no_sandbox_stays(runtime):
    body, errored = call(runtime, function("broken", source="raise ImportError('no module named nowhere')"))
    assert errored and body["errorType"] == "Lambda.ServiceException"
    assert "Runtime.ImportModuleError: ImportError: no module named nowhere" in body["errorMessage"]


PROBE_IMPORTS = """
import importlib.util

def handler(event, context):
    return {name: importlib.util.find_spec(name) is not None for name in event["names"]}
"""


def test_a_function_imports_only_its_code_its_layers_and_the_runtime_s_sdk(runtime):
    # The checkout's packages reach this machine's interpreter through the venv's editable install (a .pth
    # file); a function that found them there ran the checkout's code, not its layer's, and an import its layer
    # lacks would work here and fail on Lambda. So would any package of this virtualenv: Lambda's runtime has
    # boto3 (and what boto3 needs), nothing more.
    checkout = ["picwish_pipeline", "picwish_visual", "offline", "mock_server", "bench"]
    virtualenv = ["flask", "moto", "pytest", "requests", "aws_lambda_powertools", "PIL"]
    sdk = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "json"]
    found, errored = call(runtime, function("imports", source=PROBE_IMPORTS), {"names": checkout + virtualenv + sdk})
    assert not errored
    assert found == {name: name in sdk for name in checkout + virtualenv + sdk}


def layer_version(files: dict[str, str]) -> str:
    """A layer published to moto's Lambda (inside mock_aws); its version's ARN."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    published = boto3.client("lambda", region_name="us-east-1").publish_layer_version(
        LayerName="deps", Content={"ZipFile": buffer.getvalue()}
    )
    return published["LayerVersionArn"]


@pytest.fixture
def layered():
    """A probe function with a layer of the given files (in moto's Lambda, where the runtime finds layers)."""
    with mock_aws():

        def make(files: dict[str, str]):
            fn = function("layered", source=PROBE_IMPORTS)
            fn.layers = [{"Arn": layer_version(files)}]
            return fn

        yield make


def test_a_layer_s_requirements_are_importable_as_sam_build_installs_them_and_nothing_else(runtime, layered):
    requests_pin = f"requests=={metadata.version('requests')}"  # requests needs urllib3, idna, certifi, charset…
    fn = layered({"python/helper.py": "X = 1\n", "requirements.txt": f"# what the layer needs\n{requests_pin}\n"})
    names = ["helper", "requests", "idna", "certifi", "charset_normalizer", "flask", "aws_lambda_powertools"]
    found, errored = call(runtime, fn, {"names": names})
    assert not errored
    assert found == {name: name not in ("flask", "aws_lambda_powertools") for name in names}


def test_a_layer_requirement_this_machine_cannot_meet_is_a_service_error_naming_it(runtime, layered):
    body, errored = call(runtime, layered({"requirements.txt": "requests==0.0.1\n"}))
    assert errored and body["errorType"] == "Lambda.ServiceException"
    assert body["errorMessage"].endswith(
        f"requests==0.0.1: the version installed here is requests {metadata.version('requests')}"
    )
    body, errored = call(runtime, layered({"requirements.txt": "no-such-package-here==1.0\n"}))
    assert body["errorMessage"].endswith("no-such-package-here==1.0: no-such-package-here is not installed here")
