"""What a local sandbox imports besides its function's code and layers, as on Lambda: the packages `sam build`
installs into a layer from the layer's requirements.txt, then the SDK Lambda's runtime itself provides. Each set is
a folder of links into this virtualenv, so a function cannot import what Lambda would not give it (this machine's
Flask, moto or pytest) and a layer that forgot a requirement fails here as it would there."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Lambda's python3.12 runtime ships boto3 (with botocore, s3transfer, jmespath, python-dateutil, six, urllib3) and
# nothing else a function could import.
RUNTIME_SDK = (Requirement("boto3"),)
REQUIREMENTS_FILE = "requirements.txt"  # what `sam build` installs for a layer with a python BuildMethod


class PackagesError(Exception):
    """A layer's requirements cannot be met from this virtualenv: a package is missing, at another version, or
    named in a form this runtime does not read. The message names the requirement and what is installed."""


def requirements(text: str) -> list[Requirement]:
    """The requirements of a requirements.txt: one per line, comments and blank lines left out."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(Requirement(line))
        except InvalidRequirement as exc:
            # pip options (-r, -e, --index-url) and URLs would need pip and a network to honour.
            raise PackagesError(
                f"{REQUIREMENTS_FILE} line {number}: {line!r} is not a requirement this runtime reads ({exc})"
            ) from None
    return found


def closure(wanted: Iterable[Requirement], markers: dict[str, str] | None = None) -> list[metadata.Distribution]:
    """The installed distributions pip would install for `wanted`: each requirement with its dependencies (and
    those its extras add), markers judged in `markers` (default: this interpreter, which runs the sandboxes). A
    requirement not installed here, or installed at a version it excludes, is a PackagesError."""
    environment = markers or dict(default_environment())
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = [(requirement, frozenset({""})) for requirement in wanted]
    while todo:
        requirement, parent_extras = todo.pop()
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({**environment, "extra": e}) for e in parent_extras):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise PackagesError(f"{requirement}: {name} is not installed here") from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise PackagesError(f"{requirement}: the version installed here is {name} {dist.version}")
        new = ({""} | set(requirement.extras)) - extras_seen.setdefault(name, set())
        if not new:
            continue
        extras_seen[name] |= new
        found[name] = dist
        todo.extend((Requirement(text), frozenset(new)) for text in dist.requires or [])
    return [found[name] for name in sorted(found)]


def top_level(dist: metadata.Distribution) -> list[str]:
    """The entries a distribution puts at the top of site-packages: its packages, modules, data folders and
    its .dist-info (importlib.metadata finds versions there). Not scripts (outside it), bytecode or .pth files:
    nothing runs a .pth file in a sandbox, as nothing does in a layer."""
    names = {file.parts[0] for file in dist.files or [] if file.parts}
    return sorted(n for n in names if n not in ("..", "__pycache__") and not n.endswith(".pth"))


class LinkedPackages:
    """Folders of links to installed distributions, one per distinct set, built once under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # Every invocation asks, and a burst's first ones ask at once: one works a set out, the others wait for it.
        self._lock = threading.RLock()
        self._built: dict[object, str | None] = {}  # a layer's root is named by its content

    def folder(self, dists: Iterable[metadata.Distribution]) -> str:
        dists = list(dists)
        key = "\n".join(f"{d.metadata['Name']}=={d.version}@{d.locate_file('')}" for d in dists)
        folder = self.workdir / f"site-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        with self._lock:
            if not folder.exists():
                staging = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                for dist in dists:
                    for name in top_level(dist):
                        link = staging / name
                        # Two distributions may share a namespace folder; the folder's link serves both.
                        if not link.is_symlink():
                            link.symlink_to(Path(str(dist.locate_file(name))))
                staging.rename(folder)
        return str(folder)

    def for_layer(self, root: Path) -> str | None:
        """The packages `sam build` would install into the layer extracted at `root`; None when it names none."""
        with self._lock:
            if root not in self._built:
                wanted = root / REQUIREMENTS_FILE
                text = wanted.read_text() if wanted.is_file() else None
                self._built[root] = None if text is None else self.folder(closure(requirements(text)))
            return self._built[root]

    def runtime_sdk(self) -> str:
        with self._lock:
            if RUNTIME_SDK not in self._built:
                self._built[RUNTIME_SDK] = self.folder(closure(RUNTIME_SDK))
            return str(self._built[RUNTIME_SDK])
