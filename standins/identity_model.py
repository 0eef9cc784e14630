"""A tiny python-backend model for tests that need a real Triton but not the BERT sample:
``identity`` returns its FP32 ``INPUT0`` ``[-1, 4]`` as ``OUTPUT0``."""

from __future__ import annotations

from pathlib import Path

NAME = "identity"

CONFIG = """name: "identity"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""

CODE = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        outputs = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            outputs.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", data)]))
        return outputs
"""

STUCK_CODE = """import time


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(600)  # never ready: for tests of bounded waits

    def execute(self, requests):
        return []
"""


def write_identity_model(repository: Path, *, code: str = CODE) -> Path:
    """Write the model (or another ``model.py`` with its config) into ``repository``;
    returns the repository."""
    model = repository / NAME
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(code)
    return repository
