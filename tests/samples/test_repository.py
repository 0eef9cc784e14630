"""The repository writer: what each variant writes, and what it refuses.

Cases:
- each variant's config.pbtxt parses as Triton's ModelConfig with the contract's tensors, its
  platform or backend, dynamic batching and the instance kind the device asks for;
- the python variant's GPU config carries torch and fp16, its CPU config onnxruntime on one
  thread;
- every config warms the model with zeros in each input, at batch 1 and each power of two up
  to the largest batch on a GPU (the largest included when it is not a power of two), at 1
  and the largest on a CPU;
- the manifest records size and seed, or the checkpoint; a checkpoint folder builds the same
  network as the random weights saved into it; --replace swaps a model in one rename;
- bad input (unknown variant, size, device, GPU or runtime; size and checkpoint together;
  TensorRT on a CPU; a sequence length the network cannot hold; a missing checkpoint folder,
  one without weights, one with corrupt weights; an existing model without --replace) raises
  BuildError saying what to do and leaves the folders exactly as they were;
- the CLI passes every option through, and exits 2 with the message on stderr on bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from samples.bert import contract
from samples.bert.cli import main
from samples.bert.errors import BuildError
from samples.bert.network import SquadLogits, load_network, save_network
from samples.bert.repository import (
    MANIFEST,
    BuildSettings,
    render_config,
    warmup_batch_sizes,
    write_repository,
)
from tests.samples.helpers import SEED, expected_logits, quiet, sample_inputs


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def snapshot(folder: Path) -> list[str]:
    """Every path under ``folder``, to show nothing was added, removed or left behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("variant", "device", "platform", "backend", "kind"),
    [
        ("python", None, "", "python", model_config_pb2.ModelInstanceGroup.KIND_CPU),
        ("python", "gpu", "", "python", model_config_pb2.ModelInstanceGroup.KIND_GPU),
        ("onnx", None, "onnxruntime_onnx", "", model_config_pb2.ModelInstanceGroup.KIND_GPU),
        ("onnx", "cpu", "onnxruntime_onnx", "", model_config_pb2.ModelInstanceGroup.KIND_CPU),
        ("tensorrt", None, "tensorrt_plan", "", model_config_pb2.ModelInstanceGroup.KIND_GPU),
    ],
)
def test_config_per_variant(
    tmp_path: Path, variant: str, device: str | None, platform: str, backend: str, kind: int
) -> None:
    settings = BuildSettings(variant=variant, repository=tmp_path, device=device, instance_count=2)
    config = parse_config(render_config(settings))
    assert config.name == contract.DEFAULT_MODEL_NAME
    assert (config.platform, config.backend) == (platform, backend)
    assert config.max_batch_size == settings.resolved_max_batch_size > 0
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        (spec.name, model_config_pb2.TYPE_INT32, [contract.SEQUENCE_LENGTH])
        for spec in contract.INPUTS
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        (contract.OUTPUT_LOGITS, model_config_pb2.TYPE_FP32, [contract.SEQUENCE_LENGTH, 2])
    ]
    assert config.HasField("dynamic_batching")
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, kind)]


def test_python_gpu_config_runs_torch_in_fp16(tmp_path: Path) -> None:
    settings = BuildSettings(
        variant="python",
        repository=tmp_path,
        device="gpu",
        torch_compile=True,
        max_queue_delay_us=500,
    )
    config = parse_config(render_config(settings))
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert parameters == {"runtime": "torch", "precision": "fp16", "torch_compile": "true"}
    assert config.dynamic_batching.max_queue_delay_microseconds == 500


def test_python_cpu_config_defaults_to_onnxruntime_on_one_thread(tmp_path: Path) -> None:
    config = parse_config(render_config(BuildSettings(variant="python", repository=tmp_path)))
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert parameters == {"runtime": "onnxruntime", "cpu_threads": "1"}
    assert config.max_batch_size == 32


@pytest.mark.parametrize(
    ("device", "max_batch_size", "sizes"),
    [
        ("gpu", 64, [1, 2, 4, 8, 16, 32, 64]),
        ("gpu", 48, [1, 2, 4, 8, 16, 32, 48]),
        ("gpu", 1, [1]),
        ("cpu", 32, [1, 32]),
    ],
)
def test_warmup_batch_sizes(device: str, max_batch_size: int, sizes: list[int]) -> None:
    assert warmup_batch_sizes(max_batch_size, device) == sizes


@pytest.mark.parametrize("variant", ["python", "onnx", "tensorrt"])
def test_config_warms_each_batch_size_with_zeros(tmp_path: Path, variant: str) -> None:
    settings = BuildSettings(variant=variant, repository=tmp_path, max_batch_size=16)
    config = parse_config(render_config(settings))
    expected = warmup_batch_sizes(16, settings.resolved_device)
    assert [w.batch_size for w in config.model_warmup] == expected
    assert [w.name for w in config.model_warmup] == [f"batch_{size}" for size in expected]
    for warmup in config.model_warmup:
        assert set(warmup.inputs) == {spec.name for spec in contract.INPUTS}
        for value in warmup.inputs.values():
            assert value.zero_data
            assert (value.data_type, list(value.dims)) == (
                model_config_pb2.TYPE_INT32,
                [contract.SEQUENCE_LENGTH],
            )


def test_random_weights_manifest(python_repository: Path) -> None:
    manifest = json.loads((python_repository / "bert" / MANIFEST).read_text())
    assert manifest["variant"] == "python"
    assert (manifest["weights"], manifest["size"], manifest["seed"]) == ("random", "tiny", SEED)
    assert manifest["sequence_length"] == contract.SEQUENCE_LENGTH
    assert manifest["network"]["num_hidden_layers"] == 2
    assert {"torch", "transformers", "onnxruntime"} <= set(manifest["built_with"])


def test_checkpoint_folder(tmp_path: Path, reference: SquadLogits) -> None:
    checkpoint = tmp_path / "checkpoint"
    save_network(reference, checkpoint)
    repository = tmp_path / "models"
    write_repository(
        BuildSettings(
            variant="python", repository=repository, checkpoint=checkpoint, cpu_runtime="torch"
        ),
        progress=quiet,
    )
    manifest = json.loads((repository / "bert" / MANIFEST).read_text())
    assert manifest["weights"] == "checkpoint"
    assert manifest["checkpoint"] == str(checkpoint.resolve())
    written = load_network(repository / "bert" / "1" / "weights")
    inputs = sample_inputs(2, seed=3)
    assert (expected_logits(written, inputs) == expected_logits(reference, inputs)).all()


def test_replace_swaps_the_model(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    settings = BuildSettings(variant="onnx", repository=repository, size="tiny", device="cpu")
    write_repository(settings, progress=quiet)
    (repository / "bert" / "stale.txt").write_text("from the first build")
    with pytest.raises(BuildError, match="--replace"):
        write_repository(settings, progress=quiet)
    write_repository(
        BuildSettings(
            variant="onnx", repository=repository, size="tiny", device="cpu", replace=True
        ),
        progress=quiet,
    )
    assert snapshot(repository) == [
        "bert",
        "bert/1",
        "bert/1/model.onnx",
        "bert/MANIFEST.json",
        "bert/config.pbtxt",
    ]
    assert snapshot(tmp_path) == ["models", *(f"models/{p}" for p in snapshot(repository))]


def _empty_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _corrupt_checkpoint(tmp_path: Path) -> Path:
    folder = _empty_checkpoint(tmp_path)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


BAD_INPUT: dict[str, tuple[dict[str, object], str]] = {
    "unknown variant": ({"variant": "torchscript"}, "unknown variant 'torchscript'"),
    "unknown size": ({"size": "huge"}, "unknown size 'huge': choose one of base, large, tiny"),
    "unknown device": ({"device": "tpu"}, "unknown device 'tpu'"),
    "unknown gpu": ({"variant": "tensorrt", "gpu": "v100"}, "unknown GPU 'v100'"),
    "unknown runtime": ({"cpu_runtime": "openvino"}, "unknown CPU runtime 'openvino'"),
    "tensorrt on cpu": ({"variant": "tensorrt", "device": "cpu"}, "GPU only"),
    "sequence too long": (
        {"sequence_length": 1024},
        "sequence length 1024 does not fit the network, which has 512 positions",
    ),
    "sequence length zero": ({"sequence_length": 0}, "does not fit the network"),
    "missing checkpoint": (
        {"size": None, "checkpoint": Path("/nonexistent/bert")},
        "checkpoint folder /nonexistent/bert does not exist",
    ),
    "size and checkpoint": (
        {"checkpoint": Path("/nonexistent/bert")},
        "either a size .* or a checkpoint folder, not both",
    ),
    "bad model name": ({"model_name": "../bert"}, "model name '../bert' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    overrides, message = BAD_INPUT[case]
    fields: dict[str, object] = {
        "variant": "python",
        "repository": tmp_path / "models",
        "size": "tiny",
        **overrides,
    }
    with pytest.raises(BuildError, match=message):
        write_repository(BuildSettings(**fields), progress=quiet)  # type: ignore[arg-type]
    assert snapshot(tmp_path) == []


@pytest.mark.parametrize(
    ("make_checkpoint", "message"),
    [
        (_empty_checkpoint, "holds no weights: expected one of model.safetensors"),
        (_corrupt_checkpoint, "cannot load checkpoint"),
    ],
)
def test_bad_checkpoint_writes_nothing(
    tmp_path: Path, make_checkpoint: object, message: str
) -> None:
    checkpoint = make_checkpoint(tmp_path)  # type: ignore[operator]
    before = snapshot(tmp_path)
    with pytest.raises(BuildError, match=message):
        write_repository(
            BuildSettings(variant="onnx", repository=tmp_path / "models", checkpoint=checkpoint),
            progress=quiet,
        )
    assert snapshot(tmp_path) == before


def test_cli_builds_with_every_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repository = tmp_path / "models"
    arguments = ["build", "--variant", "tensorrt", "--size", "tiny", "--output", str(repository)]
    arguments += ["--model-name", "qa", "--version", "3", "--max-batch-size", "16", "--gpu", "t4"]
    arguments += ["--instance-count", "2", "--max-queue-delay-us", "100", "--int8", "--seed", "5"]
    arguments += ["--ngc-release", "25.06"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "next: build the engine with" in out
    assert (
        "in nvcr.io/nvidia/tensorrt:25.06-py3 on a T4, then serve it with image.tag=25.06-py3"
        in out
    )
    config = parse_config((repository / "qa" / "config.pbtxt").read_text())
    assert (config.name, config.max_batch_size, config.instance_group[0].count) == ("qa", 16, 2)
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    manifest = json.loads((repository / "qa" / MANIFEST).read_text())
    assert (manifest["version"], manifest["seed"], manifest["tensorrt"]["int8"]) == (3, 5, True)
    assert (manifest["tensorrt"]["gpu"], manifest["tensorrt"]["opt_batch"]) == ("T4", 8)
    assert manifest["tensorrt"]["ngc_release"] == "25.06"
    assert (repository / "qa" / "3").is_dir()


def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", "--variant", "python", "--size", "huge", "--output", str(tmp_path / "m")])
    assert code == 2
    assert "error: unknown size 'huge'" in capsys.readouterr().err
    assert snapshot(tmp_path) == []
