"""Inputs, expected outputs and constants shared by the BERT sample tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from samples.bert import contract
from samples.bert.network import SquadLogits

SEED = 7
"""Seed of the tiny network every repository in these tests is built from."""
TORCH_MODEL = "bert_torch"
"""The python variant on the torch runtime, served next to the default (onnxruntime) one."""


def quiet(_: str) -> None:
    """Progress sink for builds inside tests."""


def sample_inputs(batch: int, *, seed: int) -> dict[str, npt.NDArray[np.int32]]:
    """Contract inputs for ``batch`` sequences: random ids, a question/context split and
    padding that differs per sequence, so a mix-up between sequences shows."""
    generator = np.random.default_rng(seed)
    length = contract.SEQUENCE_LENGTH
    ids = generator.integers(0, 30522, (batch, length)).astype(np.int32)
    positions = np.arange(length)
    used = generator.integers(length // 2, length + 1, batch)
    split = used // 3
    mask = (positions[None, :] < used[:, None]).astype(np.int32)
    segments = ((positions[None, :] >= split[:, None]) & (mask == 1)).astype(np.int32)
    return {contract.INPUT_IDS: ids, contract.SEGMENT_IDS: segments, contract.INPUT_MASK: mask}


def expected_logits(
    network: SquadLogits, inputs: dict[str, npt.NDArray[np.int32]]
) -> npt.NDArray[np.float32]:
    """What torch gives for ``inputs``."""
    with torch.inference_mode():
        tensors = [torch.from_numpy(inputs[spec.name]) for spec in contract.INPUTS]
        logits: npt.NDArray[np.float32] = network(*tensors).numpy()
        return logits
