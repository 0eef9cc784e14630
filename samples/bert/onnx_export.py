"""Export the network to ONNX with a dynamic batch dimension and the contract's tensor names."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from samples.bert import contract
from samples.bert.network import SquadLogits, vocabulary

OPSET = 17
"""ONNX opset: read by onnxruntime 1.x and by TensorRT 10 (NGC 24.10)."""

BATCH_AXIS = "batch"


def export_onnx(network: SquadLogits, path: Path, *, sequence_length: int) -> None:
    """Write ``network`` to ``path`` as an ONNX model whose inputs are INT32
    ``[batch, sequence_length]`` and whose output is FP32 ``[batch, sequence_length, 2]``.

    The TorchScript exporter is used (``dynamo=False``): it needs no extra packages and gives a
    plain graph that TensorRT's ONNX parser fuses well. Its tracer warnings about Python
    booleans concern causal-mask branches BERT never takes, so they are silenced. The
    network's vocabulary sizes go into the model's metadata, where the python variant reads
    the range each input's ids must lie in.
    """
    example = torch.ones((2, sequence_length), dtype=torch.int32)
    names = [spec.name for spec in contract.INPUTS]
    outputs = [spec.name for spec in contract.OUTPUTS]
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example, torch.zeros_like(example), example),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=outputs,
            dynamic_axes={name: {0: BATCH_AXIS} for name in (*names, *outputs)},
            opset_version=OPSET,
        )
    model = onnx.load(str(path))
    for key, value in vocabulary(network.bert.config).items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))
