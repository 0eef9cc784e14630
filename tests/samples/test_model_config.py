"""The model's config.pbtxt: what each variant's config says to Triton.

Cases:
- each variant's config.pbtxt parses as Triton's ModelConfig with the contract's tensors, its
  platform or backend, dynamic batching and the instance kind the device asks for;
- the python variant's GPU config carries torch and fp16 and replays CUDA graphs up to batch
  64 (never above the max batch; off with torch.compile or when asked), the manifest lists
  the buckets; its CPU config onnxruntime on one thread;
- every config warms the model with zeros in each input, at batch 1 and each power of two up
  to the largest batch on a GPU (the largest included when it is not a power of two), at 1
  and the largest on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tritonclient.grpc import model_config_pb2

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.model_config import render_config, warmup_batch_sizes
from samples.bert.repository import MANIFEST, write_repository
from tests.samples.helpers import parse_config, quiet


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


def _parameters(settings: BuildSettings) -> dict[str, str]:
    config = parse_config(render_config(settings))
    return {key: value.string_value for key, value in config.parameters.items()}


def test_python_gpu_config_runs_torch_in_fp16(tmp_path: Path) -> None:
    settings = BuildSettings(
        variant="python",
        repository=tmp_path,
        device="gpu",
        torch_compile=True,
        max_queue_delay_us=500,
    )
    config = parse_config(render_config(settings))
    assert _parameters(settings) == {
        "runtime": "torch",
        "precision": "fp16",
        "torch_compile": "true",
        "cuda_graphs": "false",
    }
    assert config.dynamic_batching.max_queue_delay_microseconds == 500


@pytest.mark.parametrize(
    ("options", "graphs", "largest"),
    [
        ({}, "true", "64"),  # the default on a GPU
        ({"max_batch_size": 16}, "true", "16"),  # never above the max batch
        ({"max_batch_size": 256, "cuda_graph_max_batch_size": 128}, "true", "128"),
        ({"cuda_graphs": False}, "false", None),
        ({"torch_compile": True}, "false", None),
    ],
)
def test_python_gpu_config_replays_cuda_graphs_by_default(
    tmp_path: Path, options: dict[str, Any], graphs: str, largest: str | None
) -> None:
    settings = BuildSettings(variant="python", repository=tmp_path, device="gpu", **options)
    parameters = _parameters(settings)
    assert parameters["cuda_graphs"] == graphs
    assert parameters.get("cuda_graph_max_batch_size") == largest
    assert settings.graphed == (graphs == "true")


def test_the_manifest_records_the_graph_buckets(tmp_path: Path) -> None:
    settings = BuildSettings(variant="python", repository=tmp_path, size="tiny", device="gpu")
    write_repository(settings, progress=quiet, warn=quiet)
    manifest = json.loads((settings.model_dir / MANIFEST).read_text())
    assert manifest["cuda_graphs"]["buckets"] == [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]
    cpu = BuildSettings(variant="python", repository=tmp_path / "cpu", size="tiny")
    write_repository(cpu, progress=quiet, warn=quiet)
    assert "cuda_graphs" not in json.loads((cpu.model_dir / MANIFEST).read_text())
    assert "cuda_graphs" not in _parameters(cpu)


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
