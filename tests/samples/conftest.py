"""Fixtures of the BERT sample tests: tiny repositories built once, the real local Triton and a
real ``gcp-storage-emulator``, each started once per session on loopback and always stopped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.local import LocalTriton
from samples.bert import contract
from samples.bert.network import SquadLogits, random_network
from samples.bert.repository import BuildSettings, write_repository
from tests.samples.helpers import SEED, TORCH_MODEL, quiet


@pytest.fixture(scope="session")
def reference() -> SquadLogits:
    """The tiny network every repository in these tests is built from."""
    return random_network("tiny", seed=SEED)


@pytest.fixture(scope="session")
def python_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the tiny python variant twice: onnxruntime (``bert``) and torch."""
    repository = tmp_path_factory.mktemp("python") / "models"
    for model_name, runtime in (
        (contract.DEFAULT_MODEL_NAME, "onnxruntime"),
        (TORCH_MODEL, "torch"),
    ):
        write_repository(
            BuildSettings(
                variant="python",
                repository=repository,
                size="tiny",
                seed=SEED,
                model_name=model_name,
                cpu_runtime=runtime,
            ),
            progress=quiet,
        )
    return repository


@pytest.fixture(scope="session")
def local_triton(
    python_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """The real tritonserver serving ``python_repository``."""
    with LocalTriton(
        model_repository=str(python_repository),
        workdir=tmp_path_factory.mktemp("triton"),
        ready_timeout_s=120,
    ) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``gcp-storage-emulator`` on loopback, in memory; yields its ``http://host:port``."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [str(executable), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"gcp-storage-emulator exited: {log.read_text(errors='replace')}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=2).close()
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"gcp-storage-emulator not up in 30 s: {log.read_text(errors='replace')}"
                )
            time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def emulator_env(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point google-cloud-storage at the emulator for one test; returns the endpoint."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return gcs_emulator
