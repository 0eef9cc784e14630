"""The ONNX export against torch, on onnxruntime's CPU provider.

Cases: the graph's inputs and output carry the contract's names, types and a dynamic batch
axis; the model's metadata records the network's vocabulary sizes; onnxruntime gives torch's
logits within 1e-4 (absolute) for batches of 1 and 5, with padding and segment splits that
differ per sequence.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from samples.bert import contract
from samples.bert.network import SquadLogits
from samples.bert.onnx_export import BATCH_AXIS, export_onnx
from tests.samples.helpers import expected_logits, sample_inputs

TOLERANCE = 1e-4
"""FP32 on both sides; differences come from kernel order only (observed ~3e-7)."""


@pytest.fixture(scope="module")
def session(
    reference: SquadLogits, tmp_path_factory: pytest.TempPathFactory
) -> onnxruntime.InferenceSession:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(reference, path, sequence_length=contract.SEQUENCE_LENGTH)
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_speaks_the_contract(session: onnxruntime.InferenceSession) -> None:
    inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    assert inputs == [
        (spec.name, "tensor(int32)", [BATCH_AXIS, contract.SEQUENCE_LENGTH])
        for spec in contract.INPUTS
    ]
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    assert outputs == [
        (contract.OUTPUT_LOGITS, "tensor(float)", [BATCH_AXIS, contract.SEQUENCE_LENGTH, 2])
    ]


def test_metadata_records_the_vocabulary(
    session: onnxruntime.InferenceSession, reference: SquadLogits
) -> None:
    config = reference.config
    assert session.get_modelmeta().custom_metadata_map == {
        "vocab_size": str(config.vocab_size),
        "type_vocab_size": str(config.type_vocab_size),
    }


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_torch(
    session: onnxruntime.InferenceSession, reference: SquadLogits, batch: int
) -> None:
    inputs = sample_inputs(batch, seed=batch)
    (logits,) = session.run(None, inputs)
    expected = expected_logits(reference, inputs)
    assert logits.shape == (batch, contract.SEQUENCE_LENGTH, 2)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=TOLERANCE)
    # The inputs matter: a different padding gives different logits.
    assert not np.allclose(logits[0], expected_logits(reference, sample_inputs(batch, seed=99))[0])
