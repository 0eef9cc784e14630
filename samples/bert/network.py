"""The network: BERT for SQuAD question answering, written against torch alone.

The repository writer copies this module next to the python backend's ``model.py``, where the
server imports it: it may import torch and the standard library only, never ``transformers``
or the rest of ``samples``, so it runs in any Triton image whose Python has torch
(``samples/bert/images.py``; ``tests/samples/test_image_flavors.py`` checks the imports).
Weights from a ``transformers`` checkpoint are converted at build time
(``samples/bert/checkpoint.py``) into this module's layout: ``network.json`` (the shape) and
``network.pt`` (a plain state dict).

The module holds no device, dtype or compilation choice: the caller moves it (``.to``,
``.half``) and may wrap it (``torch.compile``, CUDA graphs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

CONFIG_FILE = "network.json"
"""The shape of the network, next to its weights."""
WEIGHTS_FILE = "network.pt"
"""The weights: a state dict saved by ``torch.save``, read with ``weights_only=True``."""
WEIGHTS_FOLDER = "weights"
"""Folder, next to ``model.py``, holding ``CONFIG_FILE`` and ``WEIGHTS_FILE``."""

VOCABULARY_KEYS = ("vocab_size", "type_vocab_size")
"""The shape's fields that bound the ids a request may carry; the ONNX export records them as
metadata, so a server running either runtime checks ids against the network itself."""

MASK_VALUES = 2
"""``input_mask`` holds 0 (padding) or 1 (token)."""

MASKED_SCORE = -10000.0
"""Added to the attention scores of padding positions: BERT's original value. It leaves no
weight on padding, like the dtype's minimum would, yet cannot overflow to -inf in fp16 when a
whole sequence is padding (Triton warms the model up with zeros)."""


@dataclass(frozen=True)
class NetworkConfig:
    """The hyperparameters of a BERT encoder with a question-answering head."""

    hidden_size: int
    """Width of every layer."""
    num_hidden_layers: int
    """Transformer layers."""
    num_attention_heads: int
    """Attention heads per layer."""
    intermediate_size: int
    """Width of the feed-forward block."""
    vocab_size: int = 30522
    """WordPiece ids; BERT's uncased vocabulary by default."""
    type_vocab_size: int = 2
    """Segment ids (question, context)."""
    max_position_embeddings: int = 512
    """The longest sequence the position embeddings cover."""
    layer_norm_eps: float = 1e-12
    """Epsilon of every layer norm."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NetworkConfig:
        """The config in ``values``; unknown keys are refused, so a typo cannot pass as a
        default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown network config keys: {', '.join(unknown)}")
        return cls(**values)


# Every size keeps BERT's uncased WordPiece vocabulary (30,522 ids), so any tokenizer output
# is a valid input whatever the size.
SIZES: dict[str, NetworkConfig] = {
    "large": NetworkConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    "base": NetworkConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    # Small enough for a CPU demo at a few hundred sequences a second on two cores.
    "tiny": NetworkConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512
    ),
}

DEFAULT_SIZE = "large"


def input_bounds(sizes: dict[str, int]) -> tuple[int, int, int]:
    """The exclusive upper bound of each input's values, in ``forward``'s order (the lower
    bound is 0): an id outside them makes the embedding lookup fail for the whole batch."""
    return (sizes["vocab_size"], sizes["type_vocab_size"], MASK_VALUES)


class Embeddings(nn.Module):
    """Token, position and segment embeddings, summed and normalised."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.segments = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        """``[batch, sequence, hidden]`` for ids ``[batch, sequence]``."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = self.tokens(input_ids) + self.positions(positions) + self.segments(segment_ids)
        return self.norm(summed)  # type: ignore[no-any-return]


class EncoderLayer(nn.Module):
    """Self-attention, then a feed-forward block, each with a residual and a post-norm.

    Query, key and value come from one fused projection (one matrix product instead of three).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.feed_forward_in = nn.Linear(hidden, config.intermediate_size)
        self.feed_forward_out = nn.Linear(config.intermediate_size, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, score_bias: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``[batch, sequence, width]`` through one layer; ``score_bias``
        ``[batch, 1, 1, sequence]`` is added to every head's attention scores."""
        batch, sequence, width = hidden.shape
        # Split, then one [batch, heads, sequence, head width] view each: cheaper in the ONNX
        # export than one 5-D permute of the fused output (measured 1.2x slower on
        # onnxruntime's CPU provider at batch 8).
        query, key, value = (
            part.view(batch, sequence, self.heads, width // self.heads).transpose(1, 2)
            for part in self.qkv(hidden).split(width, dim=-1)
        )
        context = functional.scaled_dot_product_attention(query, key, value, attn_mask=score_bias)
        context = context.transpose(1, 2).reshape(batch, sequence, width)
        hidden = self.attention_norm(hidden + self.attention_out(context))
        feed_forward = self.feed_forward_out(functional.gelu(self.feed_forward_in(hidden)))
        return self.output_norm(hidden + feed_forward)  # type: ignore[no-any-return]


class SquadLogits(nn.Module):
    """BERT for question answering with the contract's inputs and output.

    ``forward(input_ids, segment_ids, input_mask)`` takes integer tensors of shape
    ``[batch, sequence]`` and returns ``[batch, sequence, 2]``: start logits at ``[..., 0]``
    and end logits at ``[..., 1]``, the layout of NVIDIA's BERT SQuAD engines.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(
        self, input_ids: torch.Tensor, segment_ids: torch.Tensor, input_mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[batch, sequence, 2]`` for integer inputs ``[batch, sequence]``."""
        hidden = self.embeddings(input_ids.long(), segment_ids.long())
        padding = 1.0 - input_mask[:, None, None, :].to(hidden.dtype)
        score_bias = padding * MASKED_SCORE
        for layer in self.layers:
            hidden = layer(hidden, score_bias)
        return self.qa_outputs(hidden)  # type: ignore[no-any-return]

    @property
    def max_positions(self) -> int:
        """The longest sequence the position embeddings cover."""
        return self.config.max_position_embeddings

    def vocabulary(self) -> dict[str, int]:
        """``vocab_size`` and ``type_vocab_size``: what request ids are checked against."""
        return {key: int(getattr(self.config, key)) for key in VOCABULARY_KEYS}


def _initialise(module: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, identity layer norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear):
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def random_network(size: str, *, seed: int) -> SquadLogits:
    """A network of ``size`` (``KeyError`` for an unknown one) with random weights drawn from
    ``seed``: the same seed and size give the same weights on any machine with the same torch
    version, whatever else the process has drawn."""
    config = SIZES[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = SquadLogits(config)
        network.apply(_initialise)
    return network.eval()


def load_network(folder: Path) -> SquadLogits:
    """The network saved in ``folder`` by ``save_network``. The weights are read with
    ``weights_only=True``: tensors only, no pickled code runs."""
    config = NetworkConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    network = SquadLogits(config)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    return network.eval()


def save_network(network: SquadLogits, folder: Path) -> None:
    """Write ``network`` to ``folder`` (created if missing) as ``CONFIG_FILE`` and
    ``WEIGHTS_FILE``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(network.config), indent=2) + "\n")
    state = {name: tensor.contiguous() for name, tensor in network.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
