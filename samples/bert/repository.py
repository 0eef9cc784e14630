"""Write a Triton model repository for BERT question answering, in one of three variants.

``<repository>/<model>/config.pbtxt``, ``<repository>/<model>/<version>/...`` and
``<repository>/<model>/MANIFEST.json`` (how it was built). Everything is checked before
anything is written, then written into a temporary folder beside the repository and renamed
into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import jinja2

from samples.bert import contract, network, tensorrt
from samples.bert.errors import BuildError

VARIANTS = ("python", "onnx", "tensorrt")
DEVICES = ("cpu", "gpu")
CPU_RUNTIMES = ("onnxruntime", "torch")
DEFAULT_DEVICE = {"python": "cpu", "onnx": "gpu", "tensorrt": "gpu"}
DEFAULT_MAX_BATCH_SIZE = {"cpu": 32, "gpu": 64}
DEFAULT_CPU_RUNTIME = "onnxruntime"
"""Measured on the tiny model in the local Triton (see README): faster than torch at the small
batches a CPU demo sees."""

MANIFEST = "MANIFEST.json"
SOURCE = Path(__file__).resolve().parent
CHECKPOINT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildSettings:
    """What to build, and where."""

    variant: str
    """``python``, ``onnx`` or ``tensorrt``."""
    repository: Path
    """The model repository folder; the model goes in ``<repository>/<model_name>``."""
    size: str | None = None
    """``large``, ``base`` or ``tiny`` random weights; ``large`` if no checkpoint is given."""
    seed: int = 0
    """Seed of the random weights."""
    checkpoint: Path | None = None
    """A local ``save_pretrained`` folder (``config.json`` plus weights) instead of random ones."""
    model_name: str = contract.DEFAULT_MODEL_NAME
    """The model's name in the repository and in URLs."""
    version: int = contract.DEFAULT_MODEL_VERSION
    """The version folder to write."""
    sequence_length: int = contract.SEQUENCE_LENGTH
    """Tokens per sequence; clients of this project speak 128."""
    device: str | None = None
    """``cpu`` or ``gpu`` instances; by default ``cpu`` for python, ``gpu`` otherwise."""
    max_batch_size: int | None = None
    """Largest batch the dynamic batcher forms; 32 on a CPU, 64 on a GPU by default."""
    instance_count: int = 1
    """Model instances (per GPU for ``gpu``)."""
    max_queue_delay_us: int = 0
    """How long the batcher may hold a request to grow a batch; 0 batches what is queued."""
    cpu_runtime: str = DEFAULT_CPU_RUNTIME
    """python variant on a CPU: ``onnxruntime`` or ``torch``."""
    cpu_threads: int = 1
    """python variant on a CPU: intra-op threads per instance; 0 leaves the library's default
    (one a core), which fights Triton's own threads: 2 to 8 times slower, measured (README)."""
    fp16: bool = True
    """GPU: half precision (python: torch fp16; tensorrt: ``--fp16``)."""
    torch_compile: bool = False
    """python variant on a GPU: wrap the network in ``torch.compile``."""
    gpu: str = tensorrt.DEFAULT_GPU
    """tensorrt: the GPU the engine is built for (``t4``, ``l4``, ``a100``, ``h100``)."""
    int8: bool = False
    """tensorrt: allow INT8 kernels."""
    int8_calibration_cache: str | None = None
    """tensorrt: calibration cache path inside the TensorRT container."""
    ngc_release: str = tensorrt.NGC_RELEASE
    """The NGC release (``YY.MM``) of the Triton image that serves the repository (the chart's
    ``image.tag`` is ``<release>-py3``); a TensorRT engine is built in that release's TensorRT."""
    replace: bool = False
    """Replace an existing ``<repository>/<model_name>`` (it is refused otherwise)."""
    extra_manifest: dict[str, object] = field(default_factory=dict)
    """Anything else to record in the manifest."""

    @property
    def resolved_device(self) -> str:
        """``cpu`` or ``gpu``: the one asked for, else the variant's default."""
        return self.device or DEFAULT_DEVICE.get(self.variant, "cpu")

    @property
    def resolved_max_batch_size(self) -> int:
        """The one asked for, else the device's default."""
        return self.max_batch_size or DEFAULT_MAX_BATCH_SIZE[self.resolved_device]

    @property
    def model_dir(self) -> Path:
        """Where the model lands: ``<repository>/<model_name>``."""
        return self.repository / self.model_name


def _choice(value: str, allowed: tuple[str, ...] | list[str], what: str) -> None:
    if value not in allowed:
        raise BuildError(f"unknown {what} {value!r}: choose one of {', '.join(allowed)}")


def validate(settings: BuildSettings) -> None:
    """Refuse bad settings with a message saying what to change; touches nothing."""
    _choice(settings.variant, VARIANTS, "variant")
    _choice(settings.resolved_device, DEVICES, "device")
    _choice(settings.cpu_runtime, CPU_RUNTIMES, "CPU runtime")
    _choice(settings.gpu, sorted(tensorrt.GPUS), "GPU")
    if not tensorrt.NGC_RELEASE_PATTERN.fullmatch(settings.ngc_release):
        raise BuildError(
            f"NGC release {settings.ngc_release!r} is not YY.MM: give the release of the Triton "
            f"image that will serve the model (image.tag {tensorrt.NGC_RELEASE}-py3 is "
            f"--ngc-release {tensorrt.NGC_RELEASE})"
        )
    if settings.size is not None:
        _choice(settings.size, sorted(network.SIZES), "size")
        if settings.checkpoint is not None:
            raise BuildError(
                "give either a size (random weights) or a checkpoint folder, not both: the "
                "checkpoint's config.json sets the size"
            )
    if settings.variant == "tensorrt" and settings.resolved_device != "gpu":
        raise BuildError("a TensorRT engine runs on a GPU only: drop --device cpu")
    if (
        not settings.model_name
        or not settings.model_name.replace("_", "").replace("-", "").isalnum()
    ):
        raise BuildError(
            f"model name {settings.model_name!r} must be letters, digits, '-' or '_' "
            "(it is a folder name and a URL path segment)"
        )
    for name, value, low in (
        ("version", settings.version, 1),
        ("max batch size", settings.resolved_max_batch_size, 1),
        ("instance count", settings.instance_count, 1),
        ("max queue delay", settings.max_queue_delay_us, 0),
        ("CPU threads", settings.cpu_threads, 0),
    ):
        if value < low:
            raise BuildError(f"{name} must be at least {low}, not {value}")
    if settings.checkpoint is not None:
        check_checkpoint(settings.checkpoint)
    if settings.model_dir.exists() and not settings.replace:
        raise BuildError(
            f"{settings.model_dir} already exists: remove it, choose another repository or "
            "model name, or pass --replace to replace it"
        )
    if settings.repository.exists() and not settings.repository.is_dir():
        raise BuildError(f"{settings.repository} exists and is not a folder")


def check_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint folder that is missing or holds no config or weights."""
    if not folder.is_dir():
        raise BuildError(
            f"checkpoint folder {folder} does not exist: give a folder written by "
            "save_pretrained (config.json and model.safetensors), or leave it out for random "
            "weights"
        )
    if not (folder / "config.json").is_file():
        raise BuildError(f"checkpoint folder {folder} has no config.json")
    if not any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        raise BuildError(
            f"checkpoint folder {folder} holds no weights: expected one of "
            f"{', '.join(CHECKPOINT_WEIGHTS)}"
        )


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


def _make_network(
    settings: BuildSettings, progress: Progress
) -> tuple[network.SquadLogits, dict[str, object]]:
    """The network and the manifest's record of where its weights came from."""
    if settings.checkpoint is not None:
        progress(f"loading checkpoint {settings.checkpoint}")
        try:
            net = network.load_network(settings.checkpoint)
        except Exception as exc:  # safetensors, torch and transformers each raise their own
            raise BuildError(f"cannot load checkpoint {settings.checkpoint}: {exc}") from exc
        source: dict[str, object] = {
            "weights": "checkpoint",
            "checkpoint": str(settings.checkpoint.resolve()),
        }
    else:
        size = settings.size or network.DEFAULT_SIZE
        progress(f"drawing random {size} weights from seed {settings.seed}")
        net = network.random_network(size, seed=settings.seed)
        source = {"weights": "random", "size": size, "seed": settings.seed}
    if settings.sequence_length > net.max_positions or settings.sequence_length < 1:
        raise BuildError(
            f"sequence length {settings.sequence_length} does not fit the network, which has "
            f"{net.max_positions} positions: choose 1..{net.max_positions} (clients of this "
            f"project send {contract.SEQUENCE_LENGTH})"
        )
    config = net.bert.config
    source["network"] = {
        "architecture": "BertForQuestionAnswering",
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "vocab_size": config.vocab_size,
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    return net, source


def contract_config(
    *,
    model_name: str,
    description: str,
    max_batch_size: int,
    instance_count: int,
    device: str,
    backend: str | None = None,
    platform: str | None = None,
    sequence_length: int = contract.SEQUENCE_LENGTH,
    logits_per_token: int = contract.LOGITS_PER_TOKEN,
    max_queue_delay_us: int = 0,
    parameters: Mapping[str, str] | None = None,
    manifest: bool = True,
) -> str:
    """A ``config.pbtxt`` whose tensors are the contract's (names and types from
    ``contract.py``) at ``sequence_length``; ``logits_per_token`` other than the contract's
    makes a model that breaks it on purpose (a test's wrong answers). ``manifest``: the writer
    puts MANIFEST.json next to it."""
    inputs = [contract.TensorSpec(t.name, t.datatype, (sequence_length,)) for t in contract.INPUTS]
    outputs = [
        contract.TensorSpec(t.name, t.datatype, (sequence_length, logits_per_token))
        for t in contract.OUTPUTS
    ]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SOURCE / "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("config.pbtxt.j2").render(
        model_name=model_name,
        description=description,
        manifest=manifest,
        platform=platform,
        backend=backend,
        max_batch_size=max_batch_size,
        inputs=inputs,
        outputs=outputs,
        max_queue_delay_us=max_queue_delay_us,
        instance_count=instance_count,
        instance_kind="KIND_GPU" if device == "gpu" else "KIND_CPU",
        parameters=dict(parameters or {}),
        warmup_batch_sizes=warmup_batch_sizes(max_batch_size, device),
    )


def render_config(settings: BuildSettings) -> str:
    """The model's ``config.pbtxt``."""
    variant, device = settings.variant, settings.resolved_device
    parameters: dict[str, str] = {}
    backend = platform_name = None
    if variant == "python":
        backend = "python"
        runtime = settings.cpu_runtime if device == "cpu" else "torch"
        parameters = {"runtime": runtime}
        if device == "gpu":
            parameters["precision"] = "fp16" if settings.fp16 else "fp32"
            parameters["torch_compile"] = "true" if settings.torch_compile else "false"
        else:
            parameters["cpu_threads"] = str(settings.cpu_threads)
        description = f"python backend, {runtime} on {device.upper()}"
    elif variant == "onnx":
        platform_name = "onnxruntime_onnx"
        description = f"ONNX Runtime on {device.upper()}"
    else:
        platform_name = "tensorrt_plan"
        description = f"TensorRT engine for {tensorrt.GPUS[settings.gpu].name}"
    return contract_config(
        model_name=settings.model_name,
        description=description,
        platform=platform_name,
        backend=backend,
        max_batch_size=settings.resolved_max_batch_size,
        sequence_length=settings.sequence_length,
        max_queue_delay_us=settings.max_queue_delay_us,
        instance_count=settings.instance_count,
        device=device,
        parameters=parameters,
    )


def warmup_batch_sizes(max_batch_size: int, device: str) -> list[int]:
    """The batch sizes Triton warms the model with before it reports the model ready.

    On a GPU, 1 and every power of two up to the largest batch (which is included): the
    dynamic batcher forms any size up to it, and the first request of a new size can wait
    on work done once per shape (a TensorRT or ``torch.compile`` specialisation, cuBLAS and
    cuDNN picking kernels, CUDA loading modules lazily); the powers of two reach every size
    range in log2(max) + 1 runs instead of one run per size. On a CPU, 1 and the largest
    batch only: ONNX Runtime and eager torch compile nothing per shape, and the largest batch
    grows the memory arenas once, at load rather than under the first burst.
    """
    if device == "cpu":
        return sorted({1, max_batch_size})
    sizes = {1, max_batch_size}
    size = 2
    while size < max_batch_size:
        sizes.add(size)
        size *= 2
    return sorted(sizes)


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
        "built_with": _package_versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **settings.extra_manifest,
    }
    if settings.variant == "python":
        shutil.copy2(SOURCE / "triton_python_model.py", version_dir / "model.py")
        shutil.copy2(SOURCE / "network.py", version_dir / "bert_network.py")
        if settings.resolved_device == "cpu" and settings.cpu_runtime == "onnxruntime":
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


def write_repository(settings: BuildSettings, *, progress: Progress = print) -> Path:
    """Build the model and put it at ``<repository>/<model_name>`` in one rename.

    Returns the model's folder. Raises ``BuildError`` before writing anything for bad settings.
    """
    validate(settings)
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
            f"{plan.gpu.name}, then serve it with image.tag={plan.ngc_release}-py3"
        )
    return settings.model_dir
