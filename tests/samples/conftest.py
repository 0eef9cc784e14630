"""Fixtures of the BERT sample tests: tiny repositories built once, the real local Triton and a
real ``gcp-storage-emulator``, each started once per session on loopback and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gcs_emulator import EmulatorError, running_emulator
from demo.local import LocalTriton
from samples.bert.network import SquadLogits, random_network
from tests.samples.helpers import SEED, write_python_models


@pytest.fixture(scope="session")
def reference() -> SquadLogits:
    """The tiny network every repository in these tests is built from."""
    return random_network("tiny", seed=SEED)


@pytest.fixture(scope="session")
def python_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the tiny python variant twice: onnxruntime (``bert``) and torch."""
    return write_python_models(tmp_path_factory.mktemp("python") / "models")


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


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``gcp-storage-emulator`` on loopback, in memory; yields its ``http://host:port``."""
    try:
        with running_emulator(tmp_path_factory.mktemp("gcs") / "emulator.log") as endpoint:
            yield endpoint
    except EmulatorError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def emulator_env(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point google-cloud-storage at the emulator for one test; returns the endpoint."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return gcs_emulator
