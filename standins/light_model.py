"""A light python-backend model with the BERT contract's inputs, whose output takes the shape
its ``config.pbtxt`` declares (``standins.light_repository.write_light_model`` writes both).

The benchmark serves it so that the clients are measured rather than the network; the tests
serve it with a wrong output shape, as a server that answers 200 with wrong outputs, and with a
``delay_s`` parameter, as a server that stalls before each answer.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Logits that depend on the inputs (so a swapped tensor would show), cheap to compute."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        # The contract's order (samples/bert/contract.py): ids, segments, mask. Names come from
        # the config, since Triton's python stub cannot import the project.
        self.ids_name, _, self.mask_name = (tensor["name"] for tensor in config["input"])
        self.output_name = config["output"][0]["name"]
        self.output_dims = [int(d) for d in config["output"][0]["dims"]]
        delay = config.get("parameters", {}).get("delay_s", {}).get("string_value", "0")
        self.delay_s = float(delay)

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        responses = []
        for request in requests:
            ids = pb_utils.get_input_tensor_by_name(request, self.ids_name).as_numpy()
            mask = pb_utils.get_input_tensor_by_name(request, self.mask_name).as_numpy()
            scores = ((ids % 97) * mask).astype(np.float32) / 97.0
            logits = np.zeros((ids.shape[0], *self.output_dims), dtype=np.float32)
            width = min(scores.shape[1], logits.shape[1])
            logits[:, :width, 0] = scores[:, :width]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(self.output_name, logits)]
                )
            )
        return responses
