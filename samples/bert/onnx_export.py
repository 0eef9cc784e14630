"""Export the network to ONNX with a dynamic batch dimension and the contract's tensor names."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from samples.bert import contract
from samples.bert.network import SquadLogits

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

    The output's declared shape is set to the contract's: the tracer leaves its sequence axis
    symbolic (it derives from the positions' ``arange``), and Triton's onnxruntime backend
    compares an output's shape with ``config.pbtxt`` exactly, so ``[batch, ?, 2]`` against
    ``dims: [128, 2]`` would fail the model's load.
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
    _declare_output_shape(model, sequence_length)
    for key, value in network.vocabulary().items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))


def _declare_output_shape(model: onnx.ModelProto, sequence_length: int) -> None:
    """Give each graph output the contract's shape: the batch axis, then fixed sizes."""
    for output, spec in zip(model.graph.output, contract.OUTPUTS, strict=True):
        dims = output.type.tensor_type.shape.dim
        sizes = (sequence_length, *spec.dims[1:])
        if len(dims) != 1 + len(sizes):
            raise ValueError(f"output {output.name} has {len(dims)} axes, not {1 + len(sizes)}")
        dims[0].Clear()
        dims[0].dim_param = BATCH_AXIS
        for dim, size in zip(dims[1:], sizes, strict=True):
            dim.Clear()
            dim.dim_value = size
