"""Real weights: a ``save_pretrained`` checkpoint through the torch-only network and the ONNX
variant, against ``transformers``' own model, and ``--model-id`` from the Hub's cache.

The checkpoint is the session's tiny ``BertForQuestionAnswering`` with every parameter
perturbed (``helpers.save_tiny_checkpoint``). Answers are compared in FP32, absolute:
- the torch-only network against ``transformers``: within 1e-5 (observed about 1e-6; the two
  differ in kernel order only, e.g. one fused query-key-value product against three);
- the ONNX variant's ``model.onnx`` in onnxruntime (CPU) against ``transformers`` and against
  the in-process network: within 1e-4, as the other ONNX tests (observed below 1e-6).

The ONNX variant's ``config.pbtxt`` is checked against its graph by reading the graph: no
Triton with the onnxruntime backend can run here (the local Triton has the python backend
only), so the checks its onnxruntime backend makes at load are the oracle, transcribed from
``CompareDimsSupported`` and ``ValidateInputs``/``ValidateOutputs`` of
triton-inference-server/onnxruntime_backend (commit 00fd3e87, ``src/onnxruntime_utils.cc``,
``src/onnxruntime.cc``): names and datatypes match one for one; with ``max_batch_size > 0``
every tensor's first axis is dynamic (-1) and the rest equal the config's ``dims``, where an
input's dynamic axis matches any size but an output's must match exactly.

``--model-id`` is run as the README runs it, ``python -m samples.bert build``, in a subprocess
whose Hugging Face Hub is offline (``HF_HUB_OFFLINE=1``): nothing is downloaded. With the
model in the Hub's cache (laid out as a download leaves it) the build uses it and records the
commit; without it, the build fails before writing anything and says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.network import SquadLogits, load_network
from samples.bert.repository import MANIFEST, write_repository
from tests.samples.helpers import expected_logits, quiet, sample_inputs, transformers_logits

NETWORK_TOLERANCE = 1e-5
"""Torch-only network against transformers, FP32."""
ONNX_TOLERANCE = 1e-4
"""onnxruntime against torch, FP32."""

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit the fake Hub cache holds the model at."""

CONFIG_TYPES = {
    model_config_pb2.TYPE_INT32: onnx.TensorProto.INT32,
    model_config_pb2.TYPE_FP32: onnx.TensorProto.FLOAT,
}
"""Triton's config datatypes and the ONNX element types its onnxruntime backend maps them to."""


@pytest.mark.parametrize("batch", [1, 5])
def test_torch_network_matches_transformers(
    reference: SquadLogits, transformers_model: Any, batch: int
) -> None:
    inputs = sample_inputs(batch, seed=20 + batch)
    ours = expected_logits(reference, inputs)
    theirs = transformers_logits(transformers_model, inputs)
    assert ours.shape == (batch, contract.SEQUENCE_LENGTH, 2)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=NETWORK_TOLERANCE)
    # Not equal by accident: the logits vary and depend on the padding.
    assert np.abs(theirs).max() > 0.1
    other = transformers_logits(transformers_model, sample_inputs(batch, seed=99))
    assert not np.allclose(theirs[0], other[0], atol=NETWORK_TOLERANCE)


def test_weights_folder_holds_the_checkpoint(
    checkpoint: Path, reference: SquadLogits, tmp_path: Path
) -> None:
    repository = tmp_path / "models"
    write_repository(
        BuildSettings(
            variant="python",
            repository=repository,
            checkpoint=checkpoint,
            device="gpu",
        ),
        progress=quiet,
    )
    weights = repository / "bert" / "1" / "weights"
    assert sorted(p.name for p in weights.iterdir()) == ["network.json", "network.pt"]
    inputs = sample_inputs(3, seed=4)
    written = expected_logits(load_network(weights), inputs)
    assert np.array_equal(written, expected_logits(reference, inputs))


@pytest.fixture(scope="module")
def onnx_variant(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX variant of the checkpoint, as documented for GKE (GPU instances)."""
    repository = tmp_path_factory.mktemp("onnx-variant") / "models"
    return write_repository(
        BuildSettings(variant="onnx", repository=repository, checkpoint=checkpoint),
        progress=quiet,
    )


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_variant_matches_transformers_in_onnxruntime(
    onnx_variant: Path, reference: SquadLogits, transformers_model: Any, batch: int
) -> None:
    session = onnxruntime.InferenceSession(
        str(onnx_variant / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    inputs = sample_inputs(batch, seed=30 + batch)
    (logits,) = session.run(None, inputs)
    assert logits.shape == (batch, contract.SEQUENCE_LENGTH, 2)
    np.testing.assert_allclose(
        logits, transformers_logits(transformers_model, inputs), rtol=0, atol=ONNX_TOLERANCE
    )
    np.testing.assert_allclose(
        logits, expected_logits(reference, inputs), rtol=0, atol=ONNX_TOLERANCE
    )


def _graph_tensors(tensors: Any) -> list[tuple[str, int, list[int]]]:
    """(name, element type, shape) of graph inputs or outputs, a symbolic axis as -1 (what
    onnxruntime reports to Triton)."""
    result = []
    for tensor in tensors:
        axes = tensor.type.tensor_type.shape.dim
        shape = [axis.dim_value if axis.HasField("dim_value") else -1 for axis in axes]
        result.append((tensor.name, tensor.type.tensor_type.elem_type, shape))
    return result


def _triton_accepts(
    model_shape: list[int], dims: list[int], max_batch_size: int, *, exact: bool
) -> bool:
    """Triton's onnxruntime backend's ``CompareDimsSupported``, batching case: the model's
    first axis is -1 and the rest match the config's dims (an input's -1 matches anything;
    ``exact`` for outputs)."""
    assert max_batch_size > 0
    if not model_shape or model_shape[0] != -1:
        return False
    full = [-1, *dims]
    if len(model_shape) != len(full):
        return False
    return all(
        model == configured
        for model, configured in zip(model_shape, full, strict=True)
        if exact or model != -1
    )


@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_onnx_config_agrees_with_the_graph(checkpoint: Path, tmp_path: Path, device: str) -> None:
    model_dir = write_repository(
        BuildSettings(
            variant="onnx", repository=tmp_path / "models", checkpoint=checkpoint, device=device
        ),
        progress=quiet,
    )
    config = text_format.Parse(
        (model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0
    expected_kind = {
        "gpu": model_config_pb2.ModelInstanceGroup.KIND_GPU,
        "cpu": model_config_pb2.ModelInstanceGroup.KIND_CPU,
    }[device]
    assert [group.kind for group in config.instance_group] == [expected_kind]
    for configured, declared, exact in (
        (config.input, graph.input, False),
        (config.output, graph.output, True),
    ):
        in_graph = _graph_tensors(declared)
        assert [t.name for t in configured] == [name for name, _, _ in in_graph]
        for tensor, (name, element_type, shape) in zip(configured, in_graph, strict=True):
            assert CONFIG_TYPES[tensor.data_type] == element_type, name
            assert _triton_accepts(shape, list(tensor.dims), config.max_batch_size, exact=exact), (
                f"{name}: model shape {shape} against config dims {list(tensor.dims)}"
            )
    # Every warm-up input is one the graph takes, at the config's shape.
    graph_inputs = {name for name, _, _ in _graph_tensors(graph.input)}
    for warmup in config.model_warmup:
        assert set(warmup.inputs) == graph_inputs
        assert 1 <= warmup.batch_size <= config.max_batch_size


def test_triton_rule_refuses_what_triton_refuses() -> None:
    """The transcription above refuses the shapes Triton refuses (the case this export hit
    before its output shape was declared: a symbolic sequence axis on the output)."""
    assert _triton_accepts([-1, 128, 2], [128, 2], 64, exact=True)
    assert not _triton_accepts([-1, -1, 2], [128, 2], 64, exact=True)
    assert _triton_accepts([-1, -1], [128], 64, exact=False)
    assert not _triton_accepts([8, 128], [128], 64, exact=False)
    assert not _triton_accepts([-1, 128, 2], [128], 64, exact=True)


# --- --model-id, offline ------------------------------------------------------------------------


def _hub_cache(root: Path, model_id: str, checkpoint: Path) -> Path:
    """``checkpoint`` in a Hugging Face Hub cache at ``root``, laid out as a download of
    ``model_id`` at ``COMMIT`` leaves it."""
    repo = root / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(checkpoint / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def _build_offline(
    cache: Path, arguments: list[str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(cache.parent / "hf-home"),
    }
    return subprocess.run(
        [sys.executable, "-m", "samples.bert", "build", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.slow
def test_model_id_builds_from_the_hub_cache(
    checkpoint: Path, reference: SquadLogits, tmp_path: Path
) -> None:
    cache = _hub_cache(tmp_path / "hub", "acme/tiny-squad", checkpoint)
    output = tmp_path / "models"
    arguments = ["--variant", "python", "--device", "gpu", "--output", str(output)]
    done = _build_offline(cache, [*arguments, "--model-id", "acme/tiny-squad"])
    assert done.returncode == 0, done.stderr
    assert "RANDOM" not in done.stderr + done.stdout
    manifest = json.loads((output / "bert" / MANIFEST).read_text())
    assert (manifest["weights"], manifest["model_id"], manifest["revision"]) == (
        "model-id",
        "acme/tiny-squad",
        COMMIT,
    )
    inputs = sample_inputs(2, seed=6)
    written = load_network(output / "bert" / "1" / "weights")
    assert np.array_equal(expected_logits(written, inputs), expected_logits(reference, inputs))


@pytest.mark.slow
def test_model_id_offline_is_refused_with_what_to_do(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    cache.mkdir()
    output = tmp_path / "models"
    done = _build_offline(
        cache,
        ["--variant", "onnx", "--model-id", "acme/not-cached", "--output", str(output)],
    )
    assert done.returncode == 2, done.stderr
    assert "error: cannot fetch model 'acme/not-cached' from the Hugging Face Hub" in done.stderr
    assert "needs a machine that reaches huggingface.co" in done.stderr
    assert "build with --checkpoint DIR" in done.stderr
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]
