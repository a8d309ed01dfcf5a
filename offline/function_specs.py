"""What a sandbox of a function held by moto starts from: its code package and layers extracted to disk, its
search path as Lambda orders it, and its environment (the template's, Lambda's own, its role's credentials)."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

from .runtime_packages import LinkedPackages, PackagesError
from .sandboxes import FunctionSpec, ServiceError


class CodeStore:
    """Code packages and layers, each extracted once into `workdir` (by the digest of its bytes)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.packages = LinkedPackages(workdir)
        self._lock = threading.Lock()
        self._extracted: set[str] = set()

    def extract(self, code: bytes) -> str:
        digest = hashlib.sha256(code).hexdigest()[:16]
        root = self.workdir / digest
        with self._lock:
            if digest not in self._extracted:
                if not root.exists():
                    staging = self.workdir / f"{digest}.partial"
                    with zipfile.ZipFile(io.BytesIO(code)) as archive:
                        archive.extractall(staging)
                    staging.rename(root)
                self._extracted.add(digest)
        return str(root)

    def layer_paths(self, fn: Any) -> tuple[list[str], list[str]]:
        """Each layer's python folder, and what `sam build` installs next to each layer's code."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(fn.account_id, fn.region)
        layer_paths, installed = [], []
        for layer in fn.layers or []:
            root = Path(self.extract(backend.layers_versions_by_arn(layer["Arn"]).code_bytes))
            layer_paths.append(str(root / "python" if (root / "python").is_dir() else root))
            try:
                packages = self.packages.for_layer(root)
            except PackagesError as exc:
                raise ServiceError(f"{fn.function_name}: layer {layer['Arn']}: {exc}") from None
            if packages is not None:
                installed.append(packages)
        return layer_paths, installed


def spec_of(
    fn: Any, code: CodeStore, *, inherited: dict[str, str], credentials: dict[str, str], concurrency: int
) -> FunctionSpec:
    """The spec of moto's function `fn`: `inherited` is the environment the service started in, `credentials`
    its role's, `concurrency` the default when it reserves none."""
    code_root = code.extract(fn.code_bytes or b"")
    layer_paths, installed = code.layer_paths(fn)
    return FunctionSpec(
        name=fn.function_name,
        arn=fn.function_arn,
        version=str(fn.version),
        handler=fn.handler,
        paths=(code_root, *layer_paths, *installed, code.packages.runtime_sdk()),
        environment=inherited | _lambda_environment(fn, code_root) | credentials | _own_environment(fn),
        timeout_s=float(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        concurrency=int(fn.reserved_concurrency or concurrency),
    )


def _lambda_environment(fn: Any, code_root: str) -> dict[str, str]:
    """What Lambda itself sets in every function's environment."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": code_root,
        "TZ": ":UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _own_environment(fn: Any) -> dict[str, str]:
    """The template's variables for the function."""
    return {k: str(v) for k, v in (fn.environment_vars or {}).items()}
