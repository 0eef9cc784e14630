"""The TensorRT variant: the build plan it writes, since no GPU or TensorRT runs here.

Cases: the exact trtexec command (min/opt/max shapes for every input, --fp16, workspace,
--int8 with and without a calibration cache, opt clamped to max); the repository holds
config.pbtxt, the manifest with the plan and the versions, the ONNX input and an executable
build_engine.sh that bash parses; the script, run with stand-ins for ``trtexec`` and
``nvidia-smi`` on PATH (the real ones need a GPU), passes trtexec exactly the planned arguments
and writes ``<version>/model.plan`` and ``engine.json``; on another GPU it stops with exit 2
before building, unless ALLOW_GPU_MISMATCH=1; the plan builds in the TensorRT of the chart's
default Triton release unless told another (``--ngc-release``), and refuses a release that is not
``YY.MM`` before writing anything.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from samples.bert import tensorrt
from samples.bert.build_settings import BuildSettings
from samples.bert.errors import BuildError
from samples.bert.repository import MANIFEST, write_repository
from tests.samples.helpers import quiet

SHAPES = "input_ids:{b}x128,segment_ids:{b}x128,input_mask:{b}x128"


def plan(**overrides: object) -> tensorrt.EnginePlan:
    fields: dict[str, object] = {
        "gpu": tensorrt.GPUS["a100"],
        "sequence_length": 128,
        "max_batch_size": 64,
        **overrides,
    }
    return tensorrt.EnginePlan(**fields)  # type: ignore[arg-type]


def test_trtexec_command() -> None:
    assert plan().trtexec_arguments(onnx_path="m.onnx", engine_path="1/model.plan") == [
        "trtexec",
        "--onnx=m.onnx",
        "--saveEngine=1/model.plan",
        f"--minShapes={SHAPES.format(b=1)}",
        f"--optShapes={SHAPES.format(b=32)}",
        f"--maxShapes={SHAPES.format(b=64)}",
        "--memPoolSize=workspace:8192M",
        "--skipInference",
        "--fp16",
    ]


@pytest.mark.parametrize(
    ("overrides", "tail"),
    [
        ({"int8": True}, ["--fp16", "--int8"]),
        (
            {"int8": True, "int8_calibration_cache": "/c/bert.cache"},
            ["--int8", "--calib=/c/bert.cache"],
        ),
        ({"fp16": False}, ["--skipInference"]),
    ],
)
def test_precision_flags(overrides: dict[str, object], tail: list[str]) -> None:
    arguments = plan(**overrides).trtexec_arguments(onnx_path="m", engine_path="e")
    assert arguments[-len(tail) :] == tail


def test_opt_batch_never_exceeds_max() -> None:
    small = plan(gpu=tensorrt.GPUS["h100"], max_batch_size=8)
    assert f"--optShapes={SHAPES.format(b=8)}" in small.trtexec_arguments(
        onnx_path="m", engine_path="e"
    )


@pytest.fixture(scope="module")
def tensorrt_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("tensorrt") / "models"
    write_repository(
        BuildSettings(variant="tensorrt", repository=repository, size="tiny", gpu="l4"),
        progress=quiet,
    )
    return repository


def test_repository_layout_and_manifest(tensorrt_repository: Path) -> None:
    model = tensorrt_repository / "bert"
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*")) == [
        "1",
        "MANIFEST.json",
        "config.pbtxt",
        "tensorrt-build",
        "tensorrt-build/build_engine.sh",
        "tensorrt-build/model.onnx",
    ]
    assert 'platform: "tensorrt_plan"' in (model / "config.pbtxt").read_text()
    manifest = json.loads((model / MANIFEST).read_text())["tensorrt"]
    assert manifest["gpu"] == "L4"
    release = tensorrt.NGC_RELEASE
    assert manifest["ngc_release"] == release
    assert manifest["tensorrt_image"] == f"nvcr.io/nvidia/tensorrt:{release}-py3"
    assert manifest["triton_image"] == f"nvcr.io/nvidia/tritonserver:{release}-py3"
    assert (manifest["min_batch"], manifest["opt_batch"], manifest["max_batch"]) == (1, 16, 64)
    assert "not built yet" in manifest["engine"]
    script = model / "tensorrt-build" / "build_engine.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(script)], check=True)


def _stand_ins(folder: Path, gpu_name: str) -> dict[str, str]:
    """``trtexec`` that records its arguments and writes the engine file; ``nvidia-smi`` that
    names a GPU. Returns the environment that puts them first on PATH."""
    folder.mkdir()
    (folder / "trtexec").write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s\\n" "$@" > "$TRTEXEC_ARGS"\n'
        'echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100500] # trtexec"\n'
        'for a in "$@"; do\n'
        '  case "$a" in --saveEngine=*) echo engine > "${a#--saveEngine=}";; esac\n'
        "done\n"
    )
    (folder / "nvidia-smi").write_text(f'#!/usr/bin/env bash\necho "{gpu_name}, 8.9"\n')
    for tool in ("trtexec", "nvidia-smi"):
        (folder / tool).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{folder}:{os.environ['PATH']}",
        "TRTEXEC_ARGS": str(folder / "args"),
    }


def test_build_script_runs_the_planned_command(tensorrt_repository: Path, tmp_path: Path) -> None:
    model = tensorrt_repository / "bert"
    env = _stand_ins(tmp_path / "bin", "NVIDIA L4")
    script = model / "tensorrt-build" / "build_engine.sh"
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True, timeout=60)
    build = model / "tensorrt-build"
    expected = plan(gpu=tensorrt.GPUS["l4"]).trtexec_arguments(
        onnx_path=f"{build}/model.onnx", engine_path=f"{model}/1/model.plan.partial"
    )
    assert ["trtexec", *(tmp_path / "bin" / "args").read_text().splitlines()] == expected
    assert (model / "1" / "model.plan").read_text() == "engine\n"
    info = json.loads((model / "1" / "engine.json").read_text())
    assert info["gpu"] == "NVIDIA L4, 8.9"
    assert info["tensorrt_version_code"] == "100500", "as trtexec printed it"
    assert (info["ngc_release"], info["serve_with"]) == (
        tensorrt.NGC_RELEASE,
        f"image.release={tensorrt.NGC_RELEASE}",
    )


def test_build_script_refuses_another_gpu(tensorrt_repository: Path, tmp_path: Path) -> None:
    env = _stand_ins(tmp_path / "bin", "Tesla T4")
    script = tensorrt_repository / "bert" / "tensorrt-build" / "build_engine.sh"
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "this plan is for a L4 but GPU 0 is 'Tesla T4, 8.9'" in " ".join(result.stderr.split())
    assert not (tmp_path / "bin" / "args").exists()
    allowed = subprocess.run(
        ["bash", str(script)],
        env={**env, "ALLOW_GPU_MISMATCH": "1"},
        capture_output=True,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr


def test_manifest_command_is_shell_quoted(tensorrt_repository: Path) -> None:
    command = json.loads((tensorrt_repository / "bert" / MANIFEST).read_text())["tensorrt"][
        "command"
    ]
    assert shlex.split(command)[:2] == ["trtexec", "--onnx=tensorrt-build/model.onnx"]


def test_another_release_is_built_in_its_own_tensorrt(tmp_path: Path) -> None:
    """A chart pinned to another Triton (image.release=25.06) gets an engine of its TensorRT."""
    repository = tmp_path / "models"
    write_repository(
        BuildSettings(
            variant="tensorrt", repository=repository, size="tiny", gpu="l4", ngc_release="25.06"
        ),
        progress=quiet,
    )
    model = repository / "bert"
    manifest = json.loads((model / MANIFEST).read_text())
    assert manifest["tensorrt"]["tensorrt_image"] == "nvcr.io/nvidia/tensorrt:25.06-py3"
    assert manifest["triton"] == {"release": "25.06"}
    script = (model / "tensorrt-build" / "build_engine.sh").read_text()
    assert "nvcr.io/nvidia/tensorrt:25.06-py3" in script
    assert "image.release=25.06" in script
    assert tensorrt.NGC_RELEASE not in script


@pytest.mark.parametrize("release", ["25.6", "25.06-py3", "latest", ""])
def test_a_release_that_is_not_yy_mm_is_refused(tmp_path: Path, release: str) -> None:
    repository = tmp_path / "models"
    settings = BuildSettings(
        variant="tensorrt", repository=repository, size="tiny", gpu="l4", ngc_release=release
    )
    with pytest.raises(BuildError, match=r"is not YY\.MM: give the release of the Triton image"):
        write_repository(settings, progress=quiet)
    assert not repository.exists()
