"""What the local runtime installs for a layer: the requirements.txt it reads, the closure pip would install (with
extras and markers) and the entries each distribution puts at the top of site-packages."""

import importlib.metadata as metadata
import threading
import time

import pytest
from packaging.requirements import Requirement

from offline import runtime_packages
from offline.runtime_packages import PackagesError, closure, requirements, top_level


def names(found: list[metadata.Distribution]) -> set[str]:
    return {dist.metadata["Name"].lower() for dist in found}


def test_a_requirements_file_is_read_line_by_line_without_comments():
    text = "# the layer's runtime\n\nrequests==2.34.2  # pinned\nsix\n"
    assert [str(r) for r in requirements(text)] == ["requests==2.34.2", "six"]


def test_a_pip_option_is_an_error_naming_its_line_not_a_requirement_left_out():
    with pytest.raises(PackagesError, match=r"^requirements.txt line 2: '-r base.txt' is not a requirement"):
        requirements("six\n-r base.txt\n")


def test_the_closure_follows_dependencies_and_only_the_extras_asked_for():
    plain = names(closure([Requirement("moto")]))
    assert {"moto", "boto3", "botocore", "s3transfer", "werkzeug"} <= plain and "flask" not in plain
    assert {"flask", "flask-cors"} <= names(closure([Requirement("moto[server]")]))


def test_markers_are_judged_in_the_environment_given():
    # A requirement whose marker is false here is left out; judged for another interpreter, it is in.
    requirement = Requirement('typing_extensions; python_version < "3.0"')
    assert closure([requirement]) == []
    assert names(closure([requirement], {"python_version": "2.7"})) == {"typing_extensions"}


def test_a_distribution_s_top_level_entries_leave_out_bytecode_scripts_and_pth_files():
    assert top_level(metadata.distribution("six")) == [f"six-{metadata.version('six')}.dist-info", "six.py"]
    jmespath = metadata.distribution("jmespath")
    assert ".." in {file.parts[0] for file in jmespath.files or []}  # its script, installed outside site-packages
    assert top_level(jmespath) == ["jmespath", f"jmespath-{jmespath.version}.dist-info"]


def test_a_burst_of_first_invocations_works_out_a_layer_s_packages_once(tmp_path, monkeypatch):
    # Each invocation asks for its function's packages; the first ones of a burst arrive together, and each used
    # to work the closure out itself (70 ms of this process's time each, a burst's first API call 1 s later).
    worked_out = []

    def slow_closure(wanted, markers=None):
        worked_out.append(wanted)
        time.sleep(0.05)
        return []

    monkeypatch.setattr(runtime_packages, "closure", slow_closure)
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "requirements.txt").write_text("six\n")
    packages = runtime_packages.LinkedPackages(tmp_path / "work")
    threads = [
        threading.Thread(target=lambda: (packages.for_layer(tmp_path / "layer"), packages.runtime_sdk()))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(worked_out) == 2  # the layer's requirements once, the runtime's SDK once
