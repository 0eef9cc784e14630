"""The TensorRT engine build plan: the exact ``trtexec`` command and the script that runs it.

A TensorRT engine only loads on the GPU architecture and the TensorRT version it was built
with, so it cannot be built here: the writer leaves the ONNX model and ``build_engine.sh`` in
``<model>/tensorrt-build/``, and the script runs in the NGC TensorRT container of the same
release as the Triton image that serves it (the chart's ``image.release``), on a
node with the target GPU. It writes ``<version>/model.plan``
and, next to it, ``engine.json`` with the TensorRT version and the GPU it was built on.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from samples.bert import contract

CHART_YAML = Path(__file__).resolve().parents[2] / "chart" / "Chart.yaml"


def chart_release(chart_yaml: Path = CHART_YAML) -> str:
    """The NGC release the chart ships (its Chart.yaml's ``ngcRelease``)."""
    return str(yaml.safe_load(chart_yaml.read_text())["annotations"]["ngcRelease"])


NGC_RELEASE = chart_release()
"""The NGC release of the chart's default Triton image, read from the chart. Each release pairs
one Triton with one TensorRT, so the engine is built in the TensorRT container of the release
that serves it."""
NGC_RELEASE_PATTERN = re.compile(r"^[0-9]{2}\.[0-9]{2}$")

BUILD_FOLDER = "tensorrt-build"
"""Folder in the model directory with the build inputs; Triton ignores it, upload skips it."""
BUILD_SCRIPT = "build_engine.sh"
ENGINE_FILE = "model.plan"
ENGINE_INFO = "engine.json"


@dataclass(frozen=True)
class GpuProfile:
    """What the plan tunes for one GPU model."""

    name: str
    """The GPU's marketing name, as ``nvidia-smi`` prints a part of it (``T4``)."""
    compute_capability: str
    """SM version: an engine built for one loads on no other."""
    gke_accelerator: str
    """The GKE node pool accelerator type."""
    opt_batch: int
    """Batch size the kernels are tuned for (the optimisation profile's ``opt``)."""
    workspace_mib: int
    """Builder workspace; more lets TensorRT try more tactics."""


GPUS: dict[str, GpuProfile] = {
    "t4": GpuProfile("T4", "7.5", "nvidia-tesla-t4", opt_batch=8, workspace_mib=2048),
    "l4": GpuProfile("L4", "8.9", "nvidia-l4", opt_batch=16, workspace_mib=4096),
    "a100": GpuProfile("A100", "8.0", "nvidia-tesla-a100", opt_batch=32, workspace_mib=8192),
    "h100": GpuProfile("H100", "9.0", "nvidia-h100-80gb", opt_batch=64, workspace_mib=8192),
}
DEFAULT_GPU = "t4"


@dataclass(frozen=True)
class EnginePlan:
    """How one engine is built: shapes of the optimisation profile and precision."""

    gpu: GpuProfile
    """The GPU the engine is built on and for."""
    sequence_length: int
    """Tokens per sequence (the second dimension of every input)."""
    max_batch_size: int
    """The profile's ``max`` batch, and ``max_batch_size`` in ``config.pbtxt``."""
    fp16: bool = True
    """Let TensorRT pick FP16 kernels (``--fp16``)."""
    int8: bool = False
    """Let TensorRT pick INT8 kernels (``--int8``)."""
    int8_calibration_cache: str | None = None
    """A calibration cache (``--calib``); without one, INT8 scales are placeholders and the
    engine is good for throughput measurements only, not for answers."""
    ngc_release: str = NGC_RELEASE
    """The NGC release (``YY.MM``) of the Triton image that will serve the engine."""

    @property
    def tensorrt_image(self) -> str:
        """The container to build in: the TensorRT of the serving Triton's release."""
        return f"nvcr.io/nvidia/tensorrt:{self.ngc_release}-py3"

    @property
    def triton_image(self) -> str:
        """The Triton image that loads the engine (the chart's default for ``image.release``)."""
        return f"nvcr.io/nvidia/tritonserver:{self.ngc_release}-py3"

    @property
    def opt_batch(self) -> int:
        """The GPU's tuning batch, never above the profile's maximum."""
        return min(self.gpu.opt_batch, self.max_batch_size)

    def shapes(self, batch: int) -> str:
        """``trtexec`` shape list for every input at ``batch`` sequences."""
        return ",".join(f"{t.name}:{batch}x{self.sequence_length}" for t in contract.INPUTS)

    def trtexec_arguments(self, *, onnx_path: str, engine_path: str) -> list[str]:
        """The full ``trtexec`` command line, program name first."""
        arguments = [
            "trtexec",
            f"--onnx={onnx_path}",
            f"--saveEngine={engine_path}",
            f"--minShapes={self.shapes(1)}",
            f"--optShapes={self.shapes(self.opt_batch)}",
            f"--maxShapes={self.shapes(self.max_batch_size)}",
            f"--memPoolSize=workspace:{self.gpu.workspace_mib}M",
            "--skipInference",
        ]
        if self.fp16:
            arguments.append("--fp16")
        if self.int8:
            arguments.append("--int8")
            if self.int8_calibration_cache:
                arguments.append(f"--calib={self.int8_calibration_cache}")
        return arguments

    def to_manifest(self) -> dict[str, object]:
        """The plan as the manifest records it."""
        return {
            "gpu": self.gpu.name,
            "compute_capability": self.gpu.compute_capability,
            "gke_accelerator": self.gpu.gke_accelerator,
            "ngc_release": self.ngc_release,
            "tensorrt_image": self.tensorrt_image,
            "triton_image": self.triton_image,
            "min_batch": 1,
            "opt_batch": self.opt_batch,
            "max_batch": self.max_batch_size,
            "fp16": self.fp16,
            "int8": self.int8,
            "int8_calibration_cache": self.int8_calibration_cache,
            "command": shlex.join(
                self.trtexec_arguments(
                    onnx_path=f"{BUILD_FOLDER}/model.onnx", engine_path=f"<version>/{ENGINE_FILE}"
                )
            ),
        }


def build_script(plan: EnginePlan, *, version: int) -> str:
    """``build_engine.sh``: run from anywhere inside the TensorRT container; paths are taken
    relative to the script, so the repository can be mounted at any path."""
    command = plan.trtexec_arguments(
        onnx_path='"$here/model.onnx"', engine_path='"$engine.partial"'
    )
    # shlex would quote the "$here" expansions away; the arguments hold no spaces of their own.
    trtexec = " \\\n  ".join(command)
    int8_note = ""
    if plan.int8 and not plan.int8_calibration_cache:
        int8_note = (
            'echo "warning: INT8 without a calibration cache: placeholder scales, for '
            'throughput measurements only" >&2\n'
        )
    return f"""#!/usr/bin/env bash
# Build the TensorRT engine for this model on a {plan.gpu.name} (SM {plan.gpu.compute_capability}).
# Run it in {plan.tensorrt_image} (the TensorRT of {plan.triton_image}, which
# serves it: chart value image.release={plan.ngc_release}), on a node with that GPU, the model
# repository mounted:
#   docker run --rm --gpus all -v "$PWD/<repository>:/models" {plan.tensorrt_image} \\
#     bash /models/<model>/{BUILD_FOLDER}/{BUILD_SCRIPT}
# ALLOW_GPU_MISMATCH=1 builds on another GPU anyway (the engine will only load on that one).
set -euo pipefail

here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
model_dir="$(dirname "$here")"
engine="$model_dir/{version}/{ENGINE_FILE}"

gpu="$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader -i 0)"
case "$gpu" in
  *"{plan.gpu.name}"*) ;;
  *)
    if [[ "${{ALLOW_GPU_MISMATCH:-0}}" != 1 ]]; then
      echo "error: this plan is for a {plan.gpu.name} but GPU 0 is '$gpu'; an engine only" \\
        "loads on the GPU it was built on. Rebuild the repository with --gpu for this GPU," \\
        "or set ALLOW_GPU_MISMATCH=1." >&2
      exit 2
    fi
    ;;
esac
{int8_note}
mkdir -p "$model_dir/{version}"
echo "building $engine on $gpu (this takes minutes)"
{trtexec} \\
  2>&1 | tee "$here/trtexec.log"
tensorrt="$(sed -n 's/.*TensorRT v\\([0-9]*\\).*/\\1/p' "$here/trtexec.log" | head -n 1)"
mv "$engine.partial" "$engine"
cat > "$model_dir/{version}/{ENGINE_INFO}" <<JSON
{{
  "tensorrt_version_code": "$tensorrt",
  "ngc_release": "{plan.ngc_release}",
  "serve_with": "image.release={plan.ngc_release}",
  "gpu": "$gpu",
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}}
JSON
echo "wrote $engine and {ENGINE_INFO}; upload the repository (the {BUILD_FOLDER} folder is skipped)"
echo "serve it with {plan.triton_image} (image.release={plan.ngc_release}):" \\
  "another release's TensorRT does not load it"
"""
