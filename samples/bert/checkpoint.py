"""Real weights, at build time: a ``transformers`` checkpoint into the torch-only network.

A checkpoint is a ``save_pretrained`` folder of ``BertForQuestionAnswering`` (``config.json``
plus safetensors or ``.bin`` weights), local or fetched from the Hugging Face Hub by model id.
``transformers`` reads it (every format and legacy name it knows), then its parameters are
moved, one by one, into ``network.SquadLogits``' layout; the server never imports
``transformers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from samples.bert.errors import BuildError
from samples.bert.network import NetworkConfig, SquadLogits

CHECKPOINT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""A checkpoint folder holds one of these (the index files for sharded weights)."""

SQUAD_MODEL_ID = "bert-large-uncased-whole-word-masking-finetuned-squad"
"""BERT-large fine-tuned on SQuAD 1.1: the model the original sample served."""

# What to fetch of a Hub repository: the config and one copy of the weights, safetensors first
# (repositories often carry the same weights as .bin, .h5 and .msgpack too).
_HUB_PATTERNS = (
    ["config.json", "model.safetensors", "model-*.safetensors", "model.safetensors.index.json"],
    ["config.json", "pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json"],
)

_QA_HEAD = ("qa_outputs.weight", "qa_outputs.bias")


@dataclass(frozen=True)
class Loaded:
    """A network read from a checkpoint, and where it came from (for the manifest)."""

    network: SquadLogits
    source: dict[str, object]


def check_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint folder that is missing or holds no config or weights."""
    if not folder.is_dir():
        raise BuildError(
            f"checkpoint folder {folder} does not exist: give a folder written by "
            "save_pretrained (config.json and model.safetensors), or --model-id to fetch one"
        )
    if not (folder / "config.json").is_file():
        raise BuildError(f"checkpoint folder {folder} has no config.json")
    if not any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        raise BuildError(
            f"checkpoint folder {folder} holds no weights: expected one of "
            f"{', '.join(CHECKPOINT_WEIGHTS)}"
        )


def check_model_id(model_id: str) -> None:
    """Refuse a model id that is a local path: that is what ``--checkpoint`` is for."""
    if not model_id.strip():
        raise BuildError(
            f"the model id is empty: give a Hugging Face Hub id such as {SQUAD_MODEL_ID}"
        )
    if Path(model_id).expanduser().exists():
        raise BuildError(
            f"model id {model_id!r} is a local path: pass a local folder as --checkpoint {model_id}"
        )


def network_config(config: Any) -> NetworkConfig:
    """The torch-only network's shape from a ``BertConfig``; ``BuildError`` for a variant of
    BERT the network does not implement."""
    unsupported = {
        "model_type": (config.model_type, "bert"),
        "hidden_act": (config.hidden_act, "gelu"),
        "position_embedding_type": (
            getattr(config, "position_embedding_type", "absolute"),
            "absolute",
        ),
        "is_decoder": (bool(getattr(config, "is_decoder", False)), False),
    }
    wrong = [f"{key}={got!r}" for key, (got, want) in unsupported.items() if got != want]
    if wrong:
        raise BuildError(
            f"the checkpoint is not a BERT encoder this sample serves ({', '.join(wrong)}): it "
            "needs model_type 'bert', hidden_act 'gelu', absolute positions, no decoder"
        )
    return NetworkConfig(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size,
        type_vocab_size=config.type_vocab_size,
        max_position_embeddings=config.max_position_embeddings,
        layer_norm_eps=config.layer_norm_eps,
    )


def convert_state(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """``BertForQuestionAnswering``'s state dict in ``SquadLogits``' layout. Query, key and
    value are concatenated into one projection; the pooler, which question answering does not
    use, and buffers are dropped. ``BuildError`` if any parameter is left over, so a checkpoint
    of another shape is never half-loaded."""
    source = dict(state)

    def take(name: str) -> torch.Tensor:
        return source.pop(name)

    converted: dict[str, torch.Tensor] = {}
    for ours, theirs in (
        ("tokens", "word_embeddings"),
        ("positions", "position_embeddings"),
        ("segments", "token_type_embeddings"),
    ):
        converted[f"embeddings.{ours}.weight"] = take(f"bert.embeddings.{theirs}.weight")
    for kind in ("weight", "bias"):
        converted[f"embeddings.norm.{kind}"] = take(f"bert.embeddings.LayerNorm.{kind}")
    for index in range(layers):
        theirs = f"bert.encoder.layer.{index}"
        ours = f"layers.{index}"
        for kind in ("weight", "bias"):
            projections = ("query", "key", "value")
            converted[f"{ours}.qkv.{kind}"] = torch.cat(
                [take(f"{theirs}.attention.self.{part}.{kind}") for part in projections]
            )
            for mine, their_name in (
                ("attention_out", "attention.output.dense"),
                ("attention_norm", "attention.output.LayerNorm"),
                ("feed_forward_in", "intermediate.dense"),
                ("feed_forward_out", "output.dense"),
                ("output_norm", "output.LayerNorm"),
            ):
                converted[f"{ours}.{mine}.{kind}"] = take(f"{theirs}.{their_name}.{kind}")
    for name in _QA_HEAD:
        converted[name] = take(name)
    unused = ("position_ids", "token_type_ids")  # buffers, rebuilt by the network
    left = sorted(
        name for name in source if not name.startswith("bert.pooler.") and not name.endswith(unused)
    )
    if left:
        raise BuildError(
            f"the checkpoint has parameters the network does not use: {', '.join(left)}"
        )
    return converted


def from_transformers(model: Any) -> SquadLogits:
    """The torch-only network holding ``model``'s weights (a ``BertForQuestionAnswering``)."""
    config = network_config(model.config)
    network = SquadLogits(config)
    network.load_state_dict(convert_state(model.state_dict(), config.num_hidden_layers))
    return network.eval()


def load_checkpoint(folder: Path) -> SquadLogits:
    """The network in a local ``save_pretrained`` folder, read from disk only. Refused when
    the folder has no question-answering head: ``transformers`` would draw one at random, and
    the answers would be meaningless without a word said."""
    check_checkpoint(folder)
    from transformers import BertForQuestionAnswering  # build time only; slow to import

    try:
        loaded: Any = BertForQuestionAnswering.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
        model, info = loaded
    except Exception as exc:  # safetensors, torch and transformers each raise their own
        raise BuildError(f"cannot load checkpoint {folder}: {exc}") from exc
    missing = sorted(info["missing_keys"])
    if any(name in missing for name in _QA_HEAD):
        raise BuildError(
            f"checkpoint {folder} has no question-answering head ({', '.join(_QA_HEAD)} are "
            f"missing), so its answers would be random: use a BERT fine-tuned on SQuAD, such "
            f"as {SQUAD_MODEL_ID}"
        )
    if missing:
        raise BuildError(f"checkpoint {folder} lacks parameters: {', '.join(missing)}")
    return from_transformers(model)


def fetch(model_id: str, *, revision: str | None = None) -> Path:
    """The local folder of ``model_id`` from the Hugging Face Hub: downloaded into the Hub's
    cache (``HF_HOME``; progress bars on stderr), or found there. Only the config and one copy
    of the weights are fetched. ``BuildError`` with what to do when the Hub cannot be reached
    or has no such model."""
    check_model_id(model_id)
    import huggingface_hub  # build time only

    try:
        for patterns in _HUB_PATTERNS:
            folder = Path(
                huggingface_hub.snapshot_download(
                    model_id, revision=revision, allow_patterns=patterns
                )
            )
            if any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
                return folder
    except Exception as exc:  # offline, no such repository or revision, gated, HTTP errors
        raise BuildError(
            f"cannot fetch model {model_id!r} from the Hugging Face Hub: {exc}\n"
            "Fetching needs a machine that reaches huggingface.co (with HF_TOKEN set for a "
            "gated model). Elsewhere, save the model where it can be fetched "
            "(BertForQuestionAnswering.from_pretrained(ID).save_pretrained(DIR)), copy DIR "
            "here and build with --checkpoint DIR"
        ) from exc
    raise BuildError(
        f"model {model_id!r} has no PyTorch weights on the Hub (model.safetensors or "
        "pytorch_model.bin): choose a model with PyTorch weights"
    )


def load_model_id(model_id: str, *, revision: str | None = None) -> Loaded:
    """The network of a Hub model, with its id and the commit it was read at."""
    folder = fetch(model_id, revision=revision)
    return Loaded(
        network=load_checkpoint(folder),
        # The Hub's cache keeps each snapshot in a folder named after its commit.
        source={"weights": "model-id", "model_id": model_id, "revision": folder.name},
    )
