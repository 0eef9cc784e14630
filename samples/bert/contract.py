"""The BERT question-answering model's I/O contract: the one definition every client speaks.

The chart's defaults, the model repository writer, the Locust file, the demo and the GPU
benchmark all import these names, so a client written for the original sample keeps working.

The model takes three INT32 tensors of shape ``[batch, 128]`` (``max_batch_size > 0`` in
``config.pbtxt``, so ``dims`` there is ``[128]`` and Triton adds the batch dimension) and returns
one FP32 tensor ``cls_squad_logits`` of shape ``[batch, 128, 2]``: for each token, the start
logit at ``[..., 0]`` and the end logit at ``[..., 1]``, stacked on the last axis as in NVIDIA's
BERT SQuAD TensorRT engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SEQUENCE_LENGTH: Final = 128
"""Tokens per sequence; every input and the output have this many positions."""

DEFAULT_MODEL_NAME: Final = "bert"
"""The model's name in the repository and in URLs: ``/v2/models/bert/infer``."""

DEFAULT_MODEL_VERSION: Final = 1
"""The version folder the writer creates (``<repo>/bert/1/``)."""

INPUT_IDS: Final = "input_ids"
"""Token ids from the WordPiece vocabulary."""
SEGMENT_IDS: Final = "segment_ids"
"""0 for question tokens, 1 for context tokens (BERT's ``token_type_ids``)."""
INPUT_MASK: Final = "input_mask"
"""1 for real tokens, 0 for padding (BERT's ``attention_mask``)."""
OUTPUT_LOGITS: Final = "cls_squad_logits"
"""Start and end logits per token, stacked on the last axis."""

INPUT_DATATYPE: Final = "INT32"
"""Triton datatype of every input (``TYPE_INT32`` in ``config.pbtxt``)."""
OUTPUT_DATATYPE: Final = "FP32"
"""Triton datatype of the output (``TYPE_FP32`` in ``config.pbtxt``)."""

LOGITS_PER_TOKEN: Final = 2
"""Size of the output's last axis: index 0 is the start logit, index 1 the end logit."""


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the contract, as ``config.pbtxt`` and a client see it."""

    name: str
    """The tensor's name in requests and responses."""
    datatype: str
    """Triton datatype (``INT32``, ``FP32``)."""
    dims: tuple[int, ...]
    """Shape of one sequence, without the batch dimension."""

    @property
    def config_type(self) -> str:
        """The ``data_type`` enum name in ``config.pbtxt`` (``TYPE_INT32``)."""
        return f"TYPE_{self.datatype}"

    def batched_shape(self, batch_size: int) -> list[int]:
        """The full shape of a request carrying ``batch_size`` sequences."""
        return [batch_size, *self.dims]


INPUTS: Final = (
    TensorSpec(INPUT_IDS, INPUT_DATATYPE, (SEQUENCE_LENGTH,)),
    TensorSpec(SEGMENT_IDS, INPUT_DATATYPE, (SEQUENCE_LENGTH,)),
    TensorSpec(INPUT_MASK, INPUT_DATATYPE, (SEQUENCE_LENGTH,)),
)
"""The three inputs, in the order the network takes them."""

OUTPUTS: Final = (TensorSpec(OUTPUT_LOGITS, OUTPUT_DATATYPE, (SEQUENCE_LENGTH, LOGITS_PER_TOKEN)),)
"""The one output."""


def infer_path(model_name: str = DEFAULT_MODEL_NAME) -> str:
    """The KServe v2 HTTP path that runs an inference on ``model_name``."""
    return f"/v2/models/{model_name}/infer"
