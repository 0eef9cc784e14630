"""The python variant's ``model.py`` in this process, with a stand-in for the backend's module.

Triton's python backend gives a model ``triton_python_backend_utils`` and calls its
``initialize``, ``execute`` and ``finalize``. Here a stand-in module with the names the model
uses (requests whose tensors travel through DLPack, responses, errors, the logger) lets a test
drive a built model's ``model.py`` directly: on the CPU in the render tier, and on a real GPU
in the gpu tier, where no Triton server needs to run. The config is the JSON Triton hands the
model, made from the same settings the writer renders ``config.pbtxt`` from; the served tests
(``test_python_model.py``) check the real server against the same network.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch.utils import dlpack

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.model_config import python_parameters

MODULE_NAME = "triton_python_backend_utils"


class TritonModelException(Exception):  # noqa: N818 (the backend's own name)
    """A model's refusal to load."""


@dataclass
class TritonError:
    """A per-request error in a response."""

    INVALID_ARG: ClassVar[int] = 3

    message: str
    code: int = 0


@dataclass
class Tensor:
    """A named tensor whose memory travels through DLPack, as the backend's does (no copy)."""

    _name: str
    value: torch.Tensor

    def name(self) -> str:
        return self._name

    def to_dlpack(self) -> Any:
        return self.value.__dlpack__()

    @staticmethod
    def from_dlpack(name: str, capsule: Any) -> Tensor:
        return Tensor(name, dlpack.from_dlpack(capsule))


@dataclass
class InferenceResponse:
    """One request's answer: output tensors or an error."""

    output_tensors: list[Tensor] = field(default_factory=list)
    error: TritonError | None = None


@dataclass
class InferenceRequest:
    """One request; its inputs in whatever order the client sent them."""

    tensors: list[Tensor]

    def inputs(self) -> list[Tensor]:
        return list(self.tensors)


class Logger:
    """Records what the model logs, by level."""

    lines: ClassVar[list[tuple[str, str]]] = []

    @staticmethod
    def log_info(message: str) -> None:
        Logger.lines.append(("info", message))

    @staticmethod
    def log_warn(message: str) -> None:
        Logger.lines.append(("warn", message))

    @staticmethod
    def log_error(message: str) -> None:
        Logger.lines.append(("error", message))


def backend_module() -> ModuleType:
    """A stand-in ``triton_python_backend_utils``; what models log collects in
    ``Logger.lines`` across models, until a test clears it."""
    module = ModuleType(MODULE_NAME)
    for value in (
        TritonModelException,
        TritonError,
        Tensor,
        InferenceResponse,
        InferenceRequest,
        Logger,
    ):
        setattr(module, value.__name__, value)
    return module


def model_config(
    settings: BuildSettings, parameters: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The model's config as Triton hands it to ``initialize`` (JSON, numbers of ``dims`` as
    strings), with ``parameters`` in place of the writer's where given."""
    values = python_parameters(settings) if parameters is None else parameters
    return {
        "name": settings.model_name,
        "backend": "python",
        "max_batch_size": settings.resolved_max_batch_size,
        "input": [
            {"name": t.name, "data_type": t.config_type, "dims": [str(settings.sequence_length)]}
            for t in contract.INPUTS
        ],
        "output": [
            {
                "name": t.name,
                "data_type": t.config_type,
                "dims": [str(settings.sequence_length), "2"],
            }
            for t in contract.OUTPUTS
        ],
        "parameters": {key: {"string_value": value} for key, value in values.items()},
    }


@contextmanager
def loaded_model(
    settings: BuildSettings, *, parameters: Mapping[str, str] | None = None, device_id: int = 0
) -> Iterator[Any]:
    """The built model's ``TritonPythonModel``, initialized on the instance kind of the
    settings' device, with the stand-in backend module importable while it lives; finalized
    at the end."""
    version_dir = settings.model_dir / str(settings.version)
    previous = sys.modules.get(MODULE_NAME)
    sys.modules[MODULE_NAME] = backend_module()
    try:
        spec = importlib.util.spec_from_file_location(
            f"model_{id(settings)}", version_dir / "model.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        model.initialize(
            {
                "model_config": json.dumps(model_config(settings, parameters)),
                "model_instance_kind": settings.resolved_device.upper(),
                "model_instance_device_id": str(device_id),
            }
        )
        try:
            yield model
        finally:
            model.finalize()
    finally:
        if previous is None:
            sys.modules.pop(MODULE_NAME, None)
        else:
            sys.modules[MODULE_NAME] = previous


def request(inputs: Mapping[str, npt.NDArray[np.int32]], *, reverse: bool = False) -> Any:
    """A request carrying ``inputs`` (in reverse order where asked, as a client may send)."""
    tensors = [
        Tensor(name, torch.from_numpy(np.ascontiguousarray(v))) for name, v in inputs.items()
    ]
    return InferenceRequest(tensors[::-1] if reverse else tensors)


def logits(response: Any) -> npt.NDArray[np.float32]:
    """The logits a response carries; fails on an error response."""
    assert response.error is None, response.error
    (output,) = response.output_tensors
    assert output.name() == contract.OUTPUT_LOGITS
    array: npt.NDArray[np.float32] = output.value.numpy()
    return array
