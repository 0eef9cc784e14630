"""Inputs, expected outputs and constants shared by the BERT sample tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from samples.bert import contract
from samples.bert.client import make_batches
from samples.bert.network import SquadLogits
from samples.bert.repository import BuildSettings, write_repository

SEED = 7
"""Seed of the tiny network every repository in these tests is built from."""
TORCH_MODEL = "bert_torch"
"""The python variant on the torch runtime, served next to the default (onnxruntime) one."""


def quiet(_: str) -> None:
    """Progress sink for builds inside tests."""


def write_python_models(repository: Path, *, max_queue_delay_us: int = 0) -> Path:
    """The tiny python variant twice into ``repository``: onnxruntime (``bert``) and torch
    (``TORCH_MODEL``), batching with ``max_queue_delay_us``. Returns the repository."""
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
                max_queue_delay_us=max_queue_delay_us,
            ),
            progress=quiet,
        )
    return repository


def sample_inputs(batch: int, *, seed: int) -> dict[str, npt.NDArray[np.int32]]:
    """The sample client's random inputs for ``batch`` sequences (a question/context split and
    padding that differ per sequence, so a mix-up between sequences shows), by name."""
    (inputs,) = make_batches(count=1, batch_size=batch, seq_len=contract.SEQUENCE_LENGTH, seed=seed)
    return dict(inputs.named())


def expected_logits(
    network: SquadLogits, inputs: dict[str, npt.NDArray[np.int32]]
) -> npt.NDArray[np.float32]:
    """What torch gives for ``inputs``."""
    with torch.inference_mode():
        tensors = [torch.from_numpy(inputs[spec.name]) for spec in contract.INPUTS]
        logits: npt.NDArray[np.float32] = network(*tensors).numpy()
        return logits
