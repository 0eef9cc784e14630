"""Triton python-backend model serving BERT question answering (copied as ``<version>/model.py``).

All requests of one ``execute()`` call run as one forward pass: dynamic batching gathers them,
this model concatenates them, runs the network once and splits the logits back per request.
On a GPU the pass is a replay of a CUDA graph captured at load for the batch's bucket
(``bert_cuda_graphs.py``), up to the largest bucket; larger batches run eagerly.
Each request's values are checked against the network's vocabulary first: one id out of range
would make the embedding lookup fail for every request of the batch, so such a request gets its
own INVALID_ARG error (HTTP 400) naming the input, and the others run without it.

This file imports the standard library, torch and the backend's module only, as do the
modules next to it (``bert_network.py``, ``bert_cuda_graphs.py``): the image's Python needs
nothing else.

Tensors move in and out through DLPack, never numpy, on the torch runtime: GPU images ship
numpy 2 while python-backend stubs are often built for numpy 1, and numpy outputs then arrive
empty. Parameters (strings in ``config.pbtxt``):

- ``runtime``: ``torch`` (default; ``weights/`` next to this file) or ``onnxruntime``
  (``model.onnx`` and ``bert_onnxruntime.py`` next to this file, CPU).
- ``precision``: ``fp16`` or ``fp32``; fp16 applies on a GPU only.
- ``torch_compile``: ``true`` compiles the network with ``torch.compile`` (GPU, opt-in).
- ``cuda_graphs``: ``true`` (the default on a GPU unless ``torch_compile`` is ``true``)
  replays each batch from a CUDA graph captured per batch bucket at load
  (``bert_cuda_graphs.py``); ``false`` runs every batch eagerly. A capture that fails is
  logged once and the model serves eagerly.
- ``cuda_graph_max_batch_size``: the largest bucket (default 64, at most ``max_batch_size``);
  larger batches run eagerly.
- ``cpu_threads``: intra-op threads on a CPU instance; ``0`` keeps the library's default (one
  a core, which competes with Triton's own threads).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack

HERE = Path(__file__).resolve().parent


def _sibling_module(filename: str) -> ModuleType:
    """A module file of this model's folder (``bert_network.py``), loaded by path so two
    models in one server can never pick up each other's copy."""
    path = HERE / filename
    spec = importlib.util.spec_from_file_location(f"{path.stem}_{id(HERE)}", path)
    if spec is None or spec.loader is None:
        raise pb_utils.TritonModelException(f"{path} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return str(value) if value else default


def _switch(config: dict[str, Any], key: str, default: bool) -> bool:
    """A ``true``/``false`` parameter; anything else stops the load with what to write."""
    value = _parameter(config, key, "true" if default else "false")
    if value not in ("true", "false"):
        raise pb_utils.TritonModelException(f"parameter {key}={value!r}: write true or false")
    return value == "true"


def _positive(config: dict[str, Any], key: str, default: int) -> int:
    value = _parameter(config, key, str(default))
    if not value.isdigit() or int(value) < 1:
        raise pb_utils.TritonModelException(f"parameter {key}={value!r}: write a whole number >= 1")
    return int(value)


class _Runner(Protocol):
    """``bert_cuda_graphs.BatchRunner``: input columns in, host FP32 logits out."""

    def __call__(self, columns: list[list[torch.Tensor]]) -> torch.Tensor: ...


class TritonPythonModel:
    """The python backend's entry point: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read names and parameters from the config, load the network."""
        config = json.loads(args["model_config"])
        self._network_module = _sibling_module("bert_network.py")
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
            self._graphs = _sibling_module("bert_cuda_graphs.py")
            buckets = self._graph_buckets(config)
            network = self._torch_network(config, threads)
            self._runner = self._batch_runner(config, network, buckets)
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
        network = self._network_module.load_network(HERE / self._network_module.WEIGHTS_FOLDER)
        self._sizes: dict[str, int] = network.vocabulary()
        if self.device.type == "cuda":
            if _parameter(config, "precision", "fp16") == "fp16":
                network = network.half()
            torch.backends.cuda.matmul.allow_tf32 = True
        network = network.to(self.device)
        if _switch(config, "torch_compile", default=False):
            network = torch.compile(network, dynamic=True)
        return network  # type: ignore[no-any-return]

    def _graph_buckets(self, config: dict[str, Any]) -> tuple[int, ...]:
        """The batch sizes to capture CUDA graphs for: none off a GPU or where the config turns
        graphs off. Read before the network loads, so a bad value stops nothing half-done."""
        compiled = _switch(config, "torch_compile", default=False)
        wanted = _switch(config, "cuda_graphs", default=not compiled)
        largest = _positive(
            config, "cuda_graph_max_batch_size", self._graphs.DEFAULT_LARGEST_BUCKET
        )
        if wanted and compiled:
            raise pb_utils.TritonModelException(
                "parameters torch_compile and cuda_graphs are both true: set cuda_graphs to "
                "false with torch_compile (or drop torch_compile to replay graphs)"
            )
        if not wanted or self.device.type != "cuda":
            return ()
        buckets: tuple[int, ...] = self._graphs.bucket_sizes(
            min(largest, max(1, int(config["max_batch_size"])))
        )
        return buckets

    def _batch_runner(
        self, config: dict[str, Any], network: torch.nn.Module, buckets: tuple[int, ...]
    ) -> _Runner:
        """Batches through ``network``: replays of CUDA graphs of ``buckets``, captured now,
        and eager passes for the rest."""
        runner: _Runner = self._graphs.BatchRunner(
            network,
            device=self.device,
            inputs=len(self.input_names),
            sequence_length=int(config["input"][0]["dims"][-1]),
            buckets=buckets,
            log=pb_utils.Logger.log_info,
            warn=pb_utils.Logger.log_warn,
        )
        return runner

    def _onnx_session(self, threads: int) -> Any:
        # Its own file, copied only for this runtime: the torch runtime must not need it.
        runtime = _sibling_module("bert_onnxruntime.py")
        return runtime.session(HERE / "model.onnx", threads=threads)

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

    def _forward(self, columns: list[list[torch.Tensor]]) -> torch.Tensor:
        """Logits ``[batch, sequence, 2]`` of the requests whose inputs ``columns`` hold (one
        list per input, one tensor per request), as a contiguous FP32 tensor in host memory of
        this call's own."""
        if self.runtime == "torch":
            return self._runner(columns)
        batch = [torch.cat(column) if len(column) > 1 else column[0] for column in columns]
        feed = {name: t.numpy() for name, t in zip(self.input_names, batch, strict=True)}
        (array,) = self._session.run(None, feed)
        return torch.from_numpy(array)

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
        logits = self._forward(columns)
        for index, chunk in zip(accepted, torch.split(logits, sizes), strict=True):
            capsule = chunk.contiguous().__dlpack__()
            output = pb_utils.Tensor.from_dlpack(self.output_name, capsule)
            responses[index] = pb_utils.InferenceResponse(output_tensors=[output])
        return responses

    def finalize(self) -> None:
        """Drop the network and its graphs first, so GPU memory is freed before the stub
        exits."""
        self.__dict__.pop("_runner", None)
        self.__dict__.pop("_session", None)
