"""The network: ``transformers``' ``BertForQuestionAnswering`` behind the contract's signature.

This module imports only torch and transformers, never the rest of ``samples``: the repository
writer copies it next to the python backend's ``model.py``, so the server runs the very code the
ONNX export and the tests run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertForQuestionAnswering


@dataclass(frozen=True)
class Size:
    """The hyperparameters that tell BERT sizes apart."""

    hidden: int
    """Width of every layer (``hidden_size``)."""
    layers: int
    """Transformer layers (``num_hidden_layers``)."""
    heads: int
    """Attention heads per layer."""
    intermediate: int
    """Width of the feed-forward block."""


# Every size keeps BERT's uncased WordPiece vocabulary (30,522 ids), so any tokenizer output
# is a valid input whatever the size.
SIZES: dict[str, Size] = {
    "large": Size(hidden=1024, layers=24, heads=16, intermediate=4096),
    "base": Size(hidden=768, layers=12, heads=12, intermediate=3072),
    # Small enough for a CPU demo at a few hundred sequences a second on two cores.
    "tiny": Size(hidden=128, layers=2, heads=2, intermediate=512),
}

DEFAULT_SIZE = "large"

WEIGHTS_FOLDER = "weights"
"""Folder, next to ``model.py``, holding the network in ``save_pretrained`` form."""

VOCABULARY_KEYS = ("vocab_size", "type_vocab_size")
"""The ``BertConfig`` fields that bound the ids a request may carry; the ONNX export records
them as metadata, so a server running either runtime checks ids against the network itself."""

MASK_VALUES = 2
"""``input_mask`` holds 0 (padding) or 1 (token)."""


def vocabulary(config: BertConfig) -> dict[str, int]:
    """The network's ``vocab_size`` and ``type_vocab_size``."""
    return {key: int(getattr(config, key)) for key in VOCABULARY_KEYS}


def input_bounds(sizes: dict[str, int]) -> tuple[int, int, int]:
    """The exclusive upper bound of each input's values, in ``forward``'s order (the lower
    bound is 0): an id outside them makes the embedding lookup fail for the whole batch."""
    return (sizes["vocab_size"], sizes["type_vocab_size"], MASK_VALUES)


class SquadLogits(torch.nn.Module):
    """BERT for question answering with the contract's inputs and output.

    ``forward(input_ids, segment_ids, input_mask)`` takes integer tensors of shape
    ``[batch, sequence]`` and returns ``[batch, sequence, 2]``: start logits at ``[..., 0]``
    and end logits at ``[..., 1]``, the layout of NVIDIA's BERT SQuAD engines.
    """

    def __init__(self, bert: BertForQuestionAnswering) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, segment_ids: torch.Tensor, input_mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[batch, sequence, 2]`` for integer inputs ``[batch, sequence]``."""
        output = self.bert(
            input_ids=input_ids.long(),
            token_type_ids=segment_ids.long(),
            attention_mask=input_mask.long(),
        )
        return torch.stack((output.start_logits, output.end_logits), dim=-1)

    @property
    def max_positions(self) -> int:
        """The longest sequence the position embeddings cover."""
        return int(self.bert.config.max_position_embeddings)


def size_config(size: str) -> BertConfig:
    """The ``BertConfig`` of a named size; ``KeyError`` for an unknown one."""
    chosen = SIZES[size]
    return BertConfig(
        hidden_size=chosen.hidden,
        num_hidden_layers=chosen.layers,
        num_attention_heads=chosen.heads,
        intermediate_size=chosen.intermediate,
    )


def random_network(size: str, *, seed: int) -> SquadLogits:
    """A network of ``size`` with random weights drawn from ``seed``: the same seed and size
    give the same weights on any machine with the same torch version."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        bert = BertForQuestionAnswering(size_config(size))
    finally:
        torch.random.set_rng_state(generator_state)
    return SquadLogits(bert).eval()


def load_network(folder: Path) -> SquadLogits:
    """The network saved in ``folder`` (``config.json`` plus safetensors or ``.bin`` weights),
    read from local disk only."""
    bert = BertForQuestionAnswering.from_pretrained(str(folder), local_files_only=True)
    return SquadLogits(bert).eval()


def save_network(network: SquadLogits, folder: Path) -> None:
    """Write ``network`` to ``folder`` as ``config.json`` and ``model.safetensors``."""
    network.bert.save_pretrained(str(folder))
