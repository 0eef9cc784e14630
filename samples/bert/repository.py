"""Write a Triton model repository for BERT question answering, in one of three variants.

``<repository>/<model>/config.pbtxt``, ``<repository>/<model>/<version>/...`` and
``<repository>/<model>/MANIFEST.json`` (how it was built). Everything is checked before
anything is written, then written into a temporary folder beside the repository and renamed
into place, so a failure leaves nothing half-written. What to build and its checks are in
``build_settings``, the ``config.pbtxt`` in ``model_config``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from samples.bert import checkpoint, contract, network, tensorrt
from samples.bert.build_settings import (
    NO_FLAVOR_NOTE,
    BuildSettings,
    image_flavor,
    random_weights_warning,
    validate,
)
from samples.bert.errors import BuildError
from samples.bert.model_config import render_config

MANIFEST = "MANIFEST.json"
SOURCE = Path(__file__).resolve().parent

PYTHON_MODEL_FILES = {
    "triton_python_model.py": "model.py",
    "network.py": "bert_network.py",
}
"""The python variant's model files: source in ``samples/bert`` -> name in ``<version>/``."""
TORCH_MODEL_FILES = {"cuda_graphs.py": "bert_cuda_graphs.py"}
"""Added for the python variant's torch runtime (it runs every batch through its runner)."""
ONNXRUNTIME_MODEL_FILES = {"triton_onnxruntime.py": "bert_onnxruntime.py"}
"""Added for the python variant's onnxruntime runtime."""

Progress = Callable[[str], None]


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


def _image_record(settings: BuildSettings) -> dict[str, object]:
    """The manifest's ``image``: the flavour the repository needs, the chart value that picks
    it, and the image of the release the build targets."""
    flavor = image_flavor(settings)
    if flavor is None:
        return {"flavor": None, "note": NO_FLAVOR_NOTE}
    return {
        "flavor": flavor.name,
        "chart": flavor.chart_value,
        "image": flavor.image(settings.ngc_release),
    }


def _make_network(
    settings: BuildSettings, progress: Progress
) -> tuple[network.SquadLogits, dict[str, object]]:
    """The network and the manifest's record of where its weights came from."""
    source: dict[str, object]
    if settings.model_id is not None:
        progress(f"fetching {settings.model_id} from the Hugging Face Hub (or its local cache)")
        loaded = checkpoint.load_model_id(settings.model_id, revision=settings.revision)
        net, source = loaded.network, dict(loaded.source)
    elif settings.checkpoint is not None:
        progress(f"loading checkpoint {settings.checkpoint}")
        net = checkpoint.load_checkpoint(settings.checkpoint)
        source = {"weights": "checkpoint", "checkpoint": str(settings.checkpoint.resolve())}
    else:
        size = settings.size or network.DEFAULT_SIZE
        progress(f"drawing random {size} weights from seed {settings.seed}")
        net = network.random_network(size, seed=settings.seed)
        source = {
            "weights": "random",
            "size": size,
            "seed": settings.seed,
            "warning": random_weights_warning(settings),
        }
    if settings.sequence_length > net.max_positions or settings.sequence_length < 1:
        raise BuildError(
            f"sequence length {settings.sequence_length} does not fit the network, which has "
            f"{net.max_positions} positions: choose 1..{net.max_positions} (clients of this "
            f"project send {contract.SEQUENCE_LENGTH})"
        )
    source["network"] = {
        "architecture": "BERT for SQuAD (samples/bert/network.py, torch only)",
        **asdict(net.config),
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    return net, source


def engine_plan(settings: BuildSettings) -> tensorrt.EnginePlan:
    """The TensorRT build plan the settings ask for."""
    return tensorrt.EnginePlan(
        gpu=tensorrt.GPUS[settings.gpu],
        sequence_length=settings.sequence_length,
        max_batch_size=settings.resolved_max_batch_size,
        fp16=settings.fp16,
        int8=settings.int8,
        int8_calibration_cache=settings.int8_calibration_cache,
        ngc_release=settings.ngc_release,
    )


def python_model_files(settings: BuildSettings) -> dict[str, str]:
    """The source files the python variant copies into ``<version>/``, and their names there."""
    files = dict(PYTHON_MODEL_FILES)
    if settings.python_runtime == "onnxruntime":
        files.update(ONNXRUNTIME_MODEL_FILES)
    else:
        files.update(TORCH_MODEL_FILES)
    return files


def _write_model(settings: BuildSettings, model_dir: Path, progress: Progress) -> None:
    """Everything of one model into ``model_dir`` (a fresh folder)."""
    from samples.bert.onnx_export import export_onnx  # torch.onnx is slow to import

    net, source = _make_network(settings, progress)
    version_dir = model_dir / str(settings.version)
    version_dir.mkdir(parents=True)
    manifest: dict[str, object] = {
        "model": settings.model_name,
        "version": settings.version,
        "variant": settings.variant,
        "device": settings.resolved_device,
        "sequence_length": settings.sequence_length,
        "max_batch_size": settings.resolved_max_batch_size,
        **source,
        "inputs": [t.name for t in contract.INPUTS],
        "outputs": [t.name for t in contract.OUTPUTS],
        "triton": {"release": settings.ngc_release},
        "image": _image_record(settings),
        "built_with": _package_versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **settings.extra_manifest,
    }
    if settings.graphed:
        manifest["cuda_graphs"] = {
            "buckets": list(settings.graph_buckets),
            "above": "eager",
            "captured": "at load, before the model is ready",
        }
    if settings.variant == "python":
        for source_name, target_name in python_model_files(settings).items():
            shutil.copy2(SOURCE / source_name, version_dir / target_name)
        if settings.python_runtime == "onnxruntime":
            progress("exporting ONNX for the onnxruntime runtime")
            export_onnx(net, version_dir / "model.onnx", sequence_length=settings.sequence_length)
        else:
            progress("saving weights")
            network.save_network(net, version_dir / network.WEIGHTS_FOLDER)
    elif settings.variant == "onnx":
        progress("exporting ONNX")
        export_onnx(net, version_dir / "model.onnx", sequence_length=settings.sequence_length)
    else:
        plan = engine_plan(settings)
        build_dir = model_dir / tensorrt.BUILD_FOLDER
        build_dir.mkdir()
        progress("exporting ONNX for the TensorRT build")
        export_onnx(net, build_dir / "model.onnx", sequence_length=settings.sequence_length)
        script = build_dir / tensorrt.BUILD_SCRIPT
        script.write_text(tensorrt.build_script(plan, version=settings.version))
        script.chmod(0o755)
        manifest["tensorrt"] = {
            **plan.to_manifest(),
            "engine": f"not built yet: run {tensorrt.BUILD_FOLDER}/{tensorrt.BUILD_SCRIPT} in "
            f"{plan.tensorrt_image} on a {plan.gpu.name}",
        }
    (model_dir / "config.pbtxt").write_text(render_config(settings))
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def write_repository(
    settings: BuildSettings, *, progress: Progress = print, warn: Progress = _to_stderr
) -> Path:
    """Build the model and put it at ``<repository>/<model_name>`` in one rename.

    Returns the model's folder. Raises ``BuildError`` before writing anything for bad settings.
    ``progress`` gets a line per step, ``warn`` the random-weights warning (stderr by default),
    before the build and again at its end, where it is read.
    """
    validate(settings)
    if settings.random_weights:
        warn(f"WARNING: {random_weights_warning(settings)}")
    started = time.monotonic()
    parent = settings.repository.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{settings.repository.name}-", dir=parent))
    try:
        staged_model = staging / settings.model_name
        _write_model(settings, staged_model, progress)
        settings.repository.mkdir(exist_ok=True)
        target = settings.model_dir
        if target.exists():
            target.rename(staging / "replaced")
        staged_model.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(
        f"wrote {settings.model_dir} ({settings.variant}, {settings.resolved_device}) "
        f"in {time.monotonic() - started:.1f} s"
    )
    if settings.variant == "tensorrt":
        script = settings.model_dir / tensorrt.BUILD_FOLDER / tensorrt.BUILD_SCRIPT
        plan = engine_plan(settings)
        progress(
            f"next: build the engine with {script} in {plan.tensorrt_image} on a "
            f"{plan.gpu.name}, then serve it with image.release={plan.ngc_release}"
        )
    else:
        flavor = image_flavor(settings)
        if flavor is not None:
            progress(f"serve it with {flavor.chart_value} ({flavor.image(settings.ngc_release)})")
    if settings.random_weights:
        warn(_banner(f"WARNING: {random_weights_warning(settings)}"))
    return settings.model_dir


def _banner(text: str) -> str:
    """``text`` framed, so it stands out at the end of a build's output."""
    rule = "!" * 78
    lines = textwrap.wrap(text, width=78, break_long_words=False, break_on_hyphens=False)
    return "\n".join([rule, *lines, rule])
