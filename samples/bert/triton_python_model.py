"""Triton python-backend model serving BERT question answering (copied as ``<version>/model.py``).

All requests of one ``execute()`` call run as one forward pass: dynamic batching gathers them,
this model concatenates them, runs the network once and splits the logits back per request.
Each request's values are checked against the network's vocabulary first: one id out of range
would make the embedding lookup fail for every request of the batch, so such a request gets its
own INVALID_ARG error (HTTP 400) naming the input, and the others run without it.

Tensors move in and out through DLPack, never numpy, on the torch runtime: GPU images ship
numpy 2 while python-backend stubs are often built for numpy 1, and numpy outputs then arrive
empty. Parameters (strings in ``config.pbtxt``):

- ``runtime``: ``torch`` (default) or ``onnxruntime`` (``model.onnx`` next to this file, CPU).
- ``precision``: ``fp16`` or ``fp32``; fp16 applies on a GPU only.
- ``torch_compile``: ``true`` compiles the network with ``torch.compile`` (GPU, opt-in).
- ``cpu_threads``: intra-op threads on a CPU instance; ``0`` keeps the library's default (one
  a core, which competes with Triton's own threads).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack

HERE = Path(__file__).resolve().parent


def _network_module() -> ModuleType:
    """``bert_network.py`` from this model's folder, loaded by path so two models in one
    server can never pick up each other's copy."""
    path = HERE / "bert_network.py"
    spec = importlib.util.spec_from_file_location(f"bert_network_{id(HERE)}", path)
    if spec is None or spec.loader is None:
        raise pb_utils.TritonModelException(f"{path} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return str(value) if value else default


class TritonPythonModel:
    """The python backend's entry point: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read names and parameters from the config, load the network."""
        config = json.loads(args["model_config"])
        self._network_module = _network_module()
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.input_column = {name: i for i, name in enumerate(self.input_names)}
        self.output_name = config["output"][0]["name"]
        on_gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if on_gpu else "cpu")
        self.runtime = _parameter(config, "runtime", "torch")
        threads = int(_parameter(config, "cpu_threads", "0"))
        if self.runtime == "onnxruntime":
            self._session = self._onnx_session(threads)
        elif self.runtime == "torch":
            self._network = self._torch_network(config, threads)
        else:
            raise pb_utils.TritonModelException(
                f"parameter runtime={self.runtime!r} is unknown: use torch or onnxruntime"
            )
        self.input_bounds = self._network_module.input_bounds(self._vocabulary())
        # No warm-up here: config.pbtxt's model_warmup has Triton run every batch size it
        # names through execute() before the model is marked ready.

    def _torch_network(self, config: dict[str, Any], threads: int) -> torch.nn.Module:
        if threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(threads)
        network = self._network_module.load_network(HERE / "weights")
        self._sizes: dict[str, int] = self._network_module.vocabulary(network.bert.config)
        if self.device.type == "cuda":
            if _parameter(config, "precision", "fp16") == "fp16":
                network = network.half()
            torch.backends.cuda.matmul.allow_tf32 = True
        network = network.to(self.device)
        if _parameter(config, "torch_compile", "false") == "true":
            network = torch.compile(network, dynamic=True)
        return network  # type: ignore[no-any-return]

    def _onnx_session(self, threads: int) -> Any:
        import onnxruntime  # imported here: the torch runtime must not need it

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        return onnxruntime.InferenceSession(
            str(HERE / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def _vocabulary(self) -> dict[str, int]:
        """``vocab_size`` and ``type_vocab_size`` of the network this instance runs."""
        if self.runtime == "torch":
            return self._sizes
        metadata = self._session.get_modelmeta().custom_metadata_map
        missing = [key for key in self._network_module.VOCABULARY_KEYS if key not in metadata]
        if missing:
            raise pb_utils.TritonModelException(
                f"{HERE / 'model.onnx'} records no {', '.join(missing)}, so request ids cannot "
                "be checked: rebuild the repository with `python -m samples.bert build`"
            )
        return {key: int(metadata[key]) for key in self._network_module.VOCABULARY_KEYS}

    def _refusal(self, tensors: list[torch.Tensor]) -> str | None:
        """Why a request's inputs cannot run, or None: every value must lie in its input's
        range. Two reductions per input, so the check costs microseconds, not a copy."""
        for name, tensor, bound in zip(self.input_names, tensors, self.input_bounds, strict=True):
            low, high = torch.aminmax(tensor)
            if low.item() >= 0 and high.item() < bound:
                continue
            where = ((tensor < 0) | (tensor >= bound)).nonzero()[0].tolist()
            return (
                f"input '{name}' holds {int(tensor[tuple(where)])} at {where}: its values must "
                f"lie in 0..{bound - 1} for this model"
            )
        return None

    def _forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``[batch, sequence, 2]`` as a contiguous FP32 tensor in host memory."""
        if self.runtime == "onnxruntime":
            feed = {name: t.numpy() for name, t in zip(self.input_names, inputs, strict=True)}
            (array,) = self._session.run(None, feed)
            return torch.from_numpy(array)
        with torch.inference_mode():
            on_device = [t.to(self.device, non_blocking=True) for t in inputs]
            logits: torch.Tensor = self._network(*on_device)
            return logits.float().cpu()

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order, from a single forward pass over the requests
        whose values are in range; the others are answered with their own error."""
        # One pass over each request's inputs, in whatever order the client sent them:
        # get_input_tensor_by_name would list them once per name, and with hundreds of
        # one-sequence requests a batch that per-request cost is what keeps the GPU waiting.
        responses: list[Any] = [None] * len(requests)
        columns: list[list[torch.Tensor]] = [[] for _ in self.input_names]
        accepted: list[int] = []
        for index, request in enumerate(requests):
            tensors: list[torch.Tensor] = [torch.empty(0)] * len(self.input_names)
            for tensor in request.inputs():
                tensors[self.input_column[tensor.name()]] = from_dlpack(tensor.to_dlpack())
            refusal = self._refusal(tensors)
            if refusal is not None:
                error = pb_utils.TritonError(refusal, pb_utils.TritonError.INVALID_ARG)
                responses[index] = pb_utils.InferenceResponse(error=error)
                continue
            accepted.append(index)
            for column, tensor in zip(columns, tensors, strict=True):
                column.append(tensor)
        if not accepted:
            return responses
        sizes = [int(t.shape[0]) for t in columns[0]]
        batch = [torch.cat(column) if len(column) > 1 else column[0] for column in columns]
        logits = self._forward(batch)
        for index, chunk in zip(accepted, torch.split(logits, sizes), strict=True):
            capsule = chunk.contiguous().__dlpack__()
            output = pb_utils.Tensor.from_dlpack(self.output_name, capsule)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[output])
        return responses

    def finalize(self) -> None:
        """Drop the network first, so GPU memory is freed before the stub exits."""
        self.__dict__.pop("_network", None)
        self.__dict__.pop("_session", None)
