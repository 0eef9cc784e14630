"""Fixtures of the BERT sample tests: one tiny checkpoint saved with ``save_pretrained``, the
repositories built from it once, the real local Triton and a real ``gcp-storage-emulator``, each
started once per session on loopback and always stopped; and the GPU, where there is one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.local import LocalTriton
from samples.bert.checkpoint import load_checkpoint
from samples.bert.network import SquadLogits
from standins.gcs_emulator import EmulatorError, running_emulator
from tests.samples.helpers import save_tiny_checkpoint, write_python_models


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``BertForQuestionAnswering`` saved with ``save_pretrained``: the real weights
    every repository in these tests is built from."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def transformers_model(checkpoint: Path) -> Any:
    """The checkpoint in ``transformers``' own ``BertForQuestionAnswering``: the oracle."""
    from transformers import BertForQuestionAnswering

    model = BertForQuestionAnswering.from_pretrained(str(checkpoint), local_files_only=True)
    return model.eval()


@pytest.fixture(scope="session")
def reference(checkpoint: Path) -> SquadLogits:
    """The checkpoint in the torch-only network, in this process: what the servers must give."""
    return load_checkpoint(checkpoint)


@pytest.fixture(scope="session")
def python_repository(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the checkpoint's python variant twice: onnxruntime (``bert``) and
    torch."""
    return write_python_models(tmp_path_factory.mktemp("python") / "models", checkpoint=checkpoint)


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
        server.stop(timeout_s=0)  # the session's tests are done: no drain or unload to wait for


@pytest.fixture(scope="session")
def cuda_device() -> Any:
    """The first CUDA device (a ``torch.device``); a test that needs it is skipped, saying
    why, where torch sees none. It puts the test in the gpu tier (``tests/tiers.py``)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip(
            f"no CUDA device: torch {torch.__version__} sees none (the gpu tier runs on a "
            "machine with an NVIDIA GPU: python -m tests gpu)"
        )
    return torch.device("cuda:0")


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
