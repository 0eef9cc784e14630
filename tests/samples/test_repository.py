"""The repository writer: what a build records and announces, and what it refuses.

Cases:
- the manifest records size and seed, or the checkpoint; random weights are announced on
  stderr before and after the build, in config.pbtxt's comment and in the manifest, real ones
  are not; every config names the image flavour its variant needs; a checkpoint folder builds
  the network it holds; --replace swaps a model in one rename;
- bad input (unknown variant, size, device, GPU or runtime; two weight sources together; a
  revision without a model id; a local path as model id; TensorRT on a CPU; a sequence length
  the network cannot hold; CUDA graphs on a CPU, with torch.compile, or up to batch 0; a
  missing checkpoint folder, one without weights, one with corrupt
  weights, one without a question-answering head; an existing model without --replace) raises
  BuildError saying what to do and leaves the folders exactly as they were;
- the CLI passes every option through, and exits 2 with the message on stderr on bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samples.bert import contract, images, tensorrt
from samples.bert.build_settings import BuildSettings
from samples.bert.cli import main
from samples.bert.errors import BuildError
from samples.bert.model_config import render_config
from samples.bert.network import SquadLogits, load_network
from samples.bert.repository import MANIFEST, write_repository
from tests.samples.helpers import (
    SEED,
    expected_logits,
    parse_config,
    quiet,
    sample_inputs,
)


def snapshot(folder: Path) -> list[str]:
    """Every path under ``folder``, to show nothing was added, removed or left behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


RANDOM_WARNING = (
    "RANDOM WEIGHTS (tiny, seed 7): this model's answers are meaningless; it measures the cost "
    "of serving only. For real answers build with --model-id "
    "bert-large-uncased-whole-word-masking-finetuned-squad (or --checkpoint DIR, a "
    "save_pretrained folder)"
)


def test_random_weights_are_announced_everywhere(tmp_path: Path) -> None:
    warnings: list[str] = []
    repository = tmp_path / "models"
    write_repository(
        BuildSettings(variant="onnx", repository=repository, size="tiny", seed=SEED),
        progress=quiet,
        warn=warnings.append,
    )
    # Before the build, and framed at its end, where the eye falls.
    assert warnings[0] == f"WARNING: {RANDOM_WARNING}"
    assert warnings[1].startswith("!" * 78) and warnings[1].endswith("!" * 78)
    assert " ".join(warnings[1].splitlines()[1:-1]) == f"WARNING: {RANDOM_WARNING}"
    manifest = json.loads((repository / "bert" / MANIFEST).read_text())
    assert (manifest["weights"], manifest["size"], manifest["seed"]) == ("random", "tiny", SEED)
    assert manifest["warning"] == RANDOM_WARNING
    assert manifest["sequence_length"] == contract.SEQUENCE_LENGTH
    assert manifest["network"]["num_hidden_layers"] == 2
    assert {"torch", "transformers", "onnxruntime"} <= set(manifest["built_with"])
    config = (repository / "bert" / "config.pbtxt").read_text()
    comment = " ".join(
        line.removeprefix("#").strip() for line in config.splitlines() if line.startswith("#")
    )
    assert f"WARNING: {RANDOM_WARNING}." in comment
    parse_config(config)  # the comment leaves the config valid


def test_cli_warns_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["build", "--variant", "onnx", "--size", "tiny", "--seed", str(SEED)]
    assert main([*arguments, "--output", str(tmp_path / "models")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("WARNING: RANDOM WEIGHTS (tiny, seed 7)") == 2
    assert "RANDOM" not in captured.out


@pytest.mark.parametrize(
    ("variant", "device", "runtime", "flavor"),
    [
        ("onnx", "gpu", "onnxruntime", "py3"),
        ("onnx", "cpu", "onnxruntime", "py3"),
        ("tensorrt", "gpu", "onnxruntime", "py3"),
        ("python", "gpu", "onnxruntime", "trtllm-python-py3"),
        ("python", "cpu", "torch", "trtllm-python-py3"),
    ],
)
def test_config_and_manifest_name_the_image_flavor(
    tmp_path: Path, variant: str, device: str, runtime: str, flavor: str
) -> None:
    settings = BuildSettings(
        variant=variant, repository=tmp_path, device=device, cpu_runtime=runtime, size="tiny"
    )
    image = f"nvcr.io/nvidia/tritonserver:{tensorrt.NGC_RELEASE}-{flavor}"
    assert f"# Needs image.flavor={flavor} ({image}).\n" in render_config(settings)
    if variant != "tensorrt":  # a TensorRT build needs its engine before it serves
        write_repository(settings, progress=quiet, warn=quiet)
        manifest = json.loads((tmp_path / "bert" / MANIFEST).read_text())
        assert manifest["image"] == {
            "flavor": flavor,
            "chart": f"image.flavor={flavor}",
            "image": image,
        }
        assert flavor in images.FLAVORS


def test_python_onnxruntime_runtime_names_no_image(tmp_path: Path) -> None:
    settings = BuildSettings(variant="python", repository=tmp_path, size="tiny")
    write_repository(settings, progress=quiet, warn=quiet)
    config = (tmp_path / "bert" / "config.pbtxt").read_text()
    comment = " ".join(
        line.removeprefix("#").strip() for line in config.splitlines() if line.startswith("#")
    )
    assert "onnxruntime Python package, which no NGC Triton image has" in comment
    assert "# Needs image.flavor" not in config
    manifest = json.loads((tmp_path / "bert" / MANIFEST).read_text())
    assert manifest["image"]["flavor"] is None
    assert "--variant onnx --device cpu (image.flavor=py3)" in manifest["image"]["note"]


def test_checkpoint_folder(tmp_path: Path, checkpoint: Path, reference: SquadLogits) -> None:
    repository = tmp_path / "models"
    warnings: list[str] = []
    write_repository(
        BuildSettings(
            variant="python", repository=repository, checkpoint=checkpoint, cpu_runtime="torch"
        ),
        progress=quiet,
        warn=warnings.append,
    )
    assert warnings == []
    manifest = json.loads((repository / "bert" / MANIFEST).read_text())
    assert manifest["weights"] == "checkpoint"
    assert manifest["checkpoint"] == str(checkpoint.resolve())
    assert "warning" not in manifest
    assert "WARNING" not in (repository / "bert" / "config.pbtxt").read_text()
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


def _headless_checkpoint(tmp_path: Path) -> Path:
    """A BERT pre-trained for masked words: no question-answering head."""
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path / "masked-lm"
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertForMaskedLM(config).save_pretrained(str(folder))
    return folder


def _decoder_checkpoint(tmp_path: Path) -> Path:
    """A BERT whose activation the network does not implement."""
    from transformers import BertConfig, BertForQuestionAnswering

    folder = tmp_path / "relu"
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_act="relu",
    )
    BertForQuestionAnswering(config).save_pretrained(str(folder))
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
        r"give one of a size \(random weights\), a checkpoint folder or a model id, not a size "
        r"\(random weights\) and a checkpoint folder",
    ),
    "checkpoint and model id": (
        {"size": None, "checkpoint": Path("/nonexistent/bert"), "model_id": "acme/bert"},
        "not a checkpoint folder and a model id",
    ),
    "revision without model id": ({"revision": "main"}, "a revision applies to a model id only"),
    "model id is a path": (
        {"size": None, "model_id": "/tmp"},
        "model id '/tmp' is a local path: pass a local folder as --checkpoint /tmp",
    ),
    "bad model name": ({"model_name": "../bert"}, "model name '../bert' must be"),
    "cuda graphs on cpu": (
        {"cuda_graphs": True},
        "CUDA graphs apply to the python variant on a GPU only",
    ),
    "cuda graphs with torch.compile": (
        {"device": "gpu", "cuda_graphs": True, "torch_compile": True},
        "--torch-compile and --cuda-graphs exclude each other",
    ),
    "largest graph batch zero": (
        {"device": "gpu", "cuda_graph_max_batch_size": 0},
        "CUDA graph max batch size must be at least 1, not 0",
    ),
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
        (
            _headless_checkpoint,
            r"has no question-answering head \(qa_outputs.weight, qa_outputs.bias are missing\), "
            r"so its answers would be random: use a BERT fine-tuned on SQuAD, such as "
            r"bert-large-uncased-whole-word-masking-finetuned-squad",
        ),
        (_decoder_checkpoint, r"not a BERT encoder this sample serves \(hidden_act='relu'\)"),
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
        "in nvcr.io/nvidia/tensorrt:25.06-py3 on a T4, then serve it with image.release=25.06"
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


def test_cli_passes_the_graph_options(tmp_path: Path) -> None:
    base = ["build", "--variant", "python", "--device", "gpu", "--size", "tiny"]
    off = tmp_path / "off"
    assert main([*base, "--output", str(off), "--no-cuda-graphs"]) == 0
    assert "cuda_graphs" not in json.loads((off / "bert" / MANIFEST).read_text())
    small = tmp_path / "small"
    assert main([*base, "--output", str(small), "--cuda-graph-max-batch-size", "8"]) == 0
    manifest = json.loads((small / "bert" / MANIFEST).read_text())
    assert manifest["cuda_graphs"]["buckets"] == [1, 2, 4, 8]


def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", "--variant", "python", "--size", "huge", "--output", str(tmp_path / "m")])
    assert code == 2
    assert "error: unknown size 'huge'" in capsys.readouterr().err
    assert snapshot(tmp_path) == []
