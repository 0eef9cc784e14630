"""The MPS control daemon (CUDA Multi-Process Service) of a served configuration.

The daemon is started the way the chart starts it: ``LocalTriton`` runs the container command
the chart renders with ``gpu.mps.enabled`` (its ``triton.mpsLauncher``), so the benchmark
measures the launcher users deploy. Here: finding the control program, giving each server a
daemon of its own, and quitting it once the server is gone (in a pod it ends with the
container).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from bench.errors import BenchError

CONTROL = "nvidia-cuda-mps-control"

# Where the control program is looked for: PATH, then where GKE and the NVIDIA container
# toolkit mount the driver's utilities.
MPS_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/nvidia/bin"])


def find_control() -> str:
    """The path of ``nvidia-cuda-mps-control``; ``BenchError`` saying what to do where it is
    missing."""
    control = shutil.which(CONTROL, path=MPS_SEARCH_PATH)
    if control is None:
        raise BenchError(
            f"a configuration asks for MPS (:mps) but {CONTROL} is not on PATH or in "
            "/usr/local/nvidia/bin: install the driver's utilities or drop :mps"
        )
    return control


def daemon_environment(workdir: Path) -> dict[str, str]:
    """Pipe and log folders under ``workdir``: a daemon of this server's own (the chart's
    folders under /tmp would be shared by every run on the machine)."""
    return {
        "CUDA_MPS_PIPE_DIRECTORY": str(workdir / "mps-pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(workdir / "mps-log"),
    }


@contextlib.contextmanager
def quit_on_exit(control: str, env: Mapping[str, str]) -> Iterator[None]:
    """Tell the daemon of ``env``'s folders to quit when the block ends, however it ends."""
    try:
        yield
    finally:
        subprocess.run(
            [control], input=b"quit\n", env={**os.environ, **env}, check=False, timeout=60
        )
