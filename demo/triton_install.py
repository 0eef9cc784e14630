"""The Triton server bundled in the ``nvidia-pytriton`` wheel: where its pieces are, the copy of
its backends a server runs from, and the environment it and its python stubs need."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from demo.errors import LocalTritonError


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of the bundled Triton server are."""

    binary: Path
    """The ``tritonserver`` executable."""
    libraries: Path
    """Shared libraries it links against (``nvidia_pytriton.libs``)."""
    backends: Path
    """The backends folder (python backend only)."""
    caches: Path
    """The response-cache plugins folder."""
    python_stub: Path
    """``triton_python_backend_stub`` built for this interpreter's Python version."""


def find_install() -> TritonInstall:
    """Locate the Triton server inside the installed ``nvidia-pytriton`` wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise LocalTritonError(
            "nvidia-pytriton is not installed: run `make venv` (it pins nvidia-pytriton==0.7.0)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    server = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=server / "bin" / "tritonserver",
        libraries=package.parent / "nvidia_pytriton.libs",
        backends=server / "backends",
        caches=server / "caches",
        python_stub=server / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    missing = [
        p for p in (install.binary, install.libraries, install.python_stub) if not p.exists()
    ]
    if missing:
        raise LocalTritonError(
            f"nvidia-pytriton is incomplete ({', '.join(map(str, missing))} missing) or has no "
            f"python backend stub for Python {version}: reinstall it with `make venv`"
        )
    return install


def stage_backends(install: TritonInstall, workdir: Path) -> Path:
    """Copy backends and caches into ``workdir`` with the stub for this Python next to the
    python backend, where Triton looks for it. Returns ``workdir``."""
    backends = workdir / "backends"
    if not backends.exists():
        shutil.copytree(install.backends, backends, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(install.python_stub, backends / "python" / install.python_stub.name)
    caches = workdir / "caches"
    if not caches.exists():
        shutil.copytree(install.caches, caches)
    return workdir


def server_environment(install: TritonInstall, base: Mapping[str, str]) -> dict[str, str]:
    """The environment the server and its python stubs need.

    This interpreter's LIBDIR comes first so the stub does not mix two libpython builds, then
    the wheel's libraries: without them the stub cannot start and Triton hangs in model load
    instead of exiting. The venv's ``bin`` goes first on PATH so models import its packages,
    then the server's, so a container command that runs ``tritonserver`` by name finds it.
    """
    env = dict(base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    parts = [libdir, str(install.libraries), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in parts if p)
    path = [str(Path(sys.executable).parent), str(install.binary.parent), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(path)
    return env
