"""Inputs, expected outputs and constants shared by the BERT sample tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.client import (
    INFER_HEADER_LENGTH,
    BertBatch,
    check_response,
    encode_binary,
    encode_json,
    make_batches,
)
from samples.bert.network import SIZES, SquadLogits
from samples.bert.repository import write_repository

SEED = 7
"""Seed of the tiny network every repository in these tests is built from."""
TORCH_MODEL = "bert_torch"
"""The python variant on the torch runtime, served next to the default (onnxruntime) one."""


def quiet(_: str) -> None:
    """Progress and warning sink for builds inside tests."""


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    """``config.pbtxt`` text parsed as Triton's own ``ModelConfig``."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def save_tiny_checkpoint(folder: Path, *, seed: int = SEED) -> Path:
    """A tiny ``transformers`` ``BertForQuestionAnswering`` saved with ``save_pretrained`` in
    ``folder``, the way a fine-tuned checkpoint arrives. Every parameter is perturbed from
    BERT's initialisation (which has zero biases and identity layer norms), so a bias or a norm
    that the conversion drops or misplaces changes the answers."""
    from transformers import BertConfig, BertForQuestionAnswering

    tiny = SIZES["tiny"]
    config = BertConfig(
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        intermediate_size=tiny.intermediate_size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForQuestionAnswering(config).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.05)
    model.save_pretrained(str(folder))
    return folder


def write_python_models(repository: Path, *, checkpoint: Path, max_queue_delay_us: int = 0) -> Path:
    """The python variant of ``checkpoint`` twice into ``repository``: onnxruntime (``bert``)
    and torch (``TORCH_MODEL``), batching with ``max_queue_delay_us``. Returns the
    repository."""
    for model_name, runtime in (
        (contract.DEFAULT_MODEL_NAME, "onnxruntime"),
        (TORCH_MODEL, "torch"),
    ):
        write_repository(
            BuildSettings(
                variant="python",
                repository=repository,
                checkpoint=checkpoint,
                model_name=model_name,
                cpu_runtime=runtime,
                max_queue_delay_us=max_queue_delay_us,
            ),
            progress=quiet,
        )
    return repository


def sample_inputs(batch: int, *, seed: int) -> dict[str, npt.NDArray[np.int32]]:
    """The sample client's random inputs for ``batch`` sequences (a question/context split and
    padding that differ per sequence, so a mix-up between sequences shows), by name."""
    (inputs,) = make_batches(count=1, batch_size=batch, seq_len=contract.SEQUENCE_LENGTH, seed=seed)
    return dict(inputs.named())


def expected_logits(
    network: SquadLogits, inputs: dict[str, npt.NDArray[np.int32]]
) -> npt.NDArray[np.float32]:
    """What the torch-only network gives for ``inputs``."""
    with torch.inference_mode():
        tensors = [torch.from_numpy(inputs[spec.name]) for spec in contract.INPUTS]
        logits: npt.NDArray[np.float32] = network(*tensors).numpy()
        return logits


def transformers_logits(
    model: Any, inputs: dict[str, npt.NDArray[np.int32]]
) -> npt.NDArray[np.float32]:
    """What ``transformers``' ``BertForQuestionAnswering`` gives for ``inputs``, in the
    contract's layout (start and end logits stacked on the last axis)."""
    with torch.inference_mode():
        output = model(
            input_ids=torch.from_numpy(inputs[contract.INPUT_IDS]).long(),
            token_type_ids=torch.from_numpy(inputs[contract.SEGMENT_IDS]).long(),
            attention_mask=torch.from_numpy(inputs[contract.INPUT_MASK]).long(),
        )
        logits: npt.NDArray[np.float32] = torch.stack(
            (output.start_logits, output.end_logits), dim=-1
        ).numpy()
        return logits


def http_post(
    url: str, body: bytes, headers: dict[str, str], *, timeout_s: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    """A POST on a connection of its own: status, body and headers, an HTTP error included."""
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def served_logits(
    triton_url: str, batch: BertBatch, *, encoding: str = "binary"
) -> npt.NDArray[np.float32]:
    """The sample client's request for ``batch`` (``binary`` or ``json``) sent to the model
    ``bert`` of the Triton at ``triton_url`` (``http://HOST:PORT``), its answer checked as the
    client checks every answer (``UnexpectedResponseError`` otherwise); the logits it carries,
    shaped ``[batch, sequence, 2]``."""
    request = encode_binary(batch) if encoding == "binary" else encode_json(batch)
    status, body, headers = http_post(
        f"{triton_url}/v2/models/{contract.DEFAULT_MODEL_NAME}/infer", request.body, request.headers
    )
    length = headers.get(INFER_HEADER_LENGTH)
    header_length = int(length) if length else None
    check_response(status=status, body=body, header_length=header_length, request=request)
    if header_length is None:
        (output,) = json.loads(body)["outputs"]
        logits = np.array(output["data"], dtype=np.float32)
    else:
        logits = np.frombuffer(body[header_length:], dtype="<f4")
    return logits.reshape(request.output_shape)
