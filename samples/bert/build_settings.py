"""What to build, and where: the settings of one model, the checks that refuse bad ones before
anything is written, and what follows from them (the image flavour that serves the model, the
random-weights warning)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from samples.bert import checkpoint, contract, images, network, tensorrt
from samples.bert.cuda_graphs import DEFAULT_LARGEST_BUCKET, bucket_sizes
from samples.bert.errors import BuildError

VARIANTS = ("python", "onnx", "tensorrt")
DEVICES = ("cpu", "gpu")
CPU_RUNTIMES = ("onnxruntime", "torch")
DEFAULT_DEVICE = {"python": "cpu", "onnx": "gpu", "tensorrt": "gpu"}
DEFAULT_MAX_BATCH_SIZE = {"cpu": 32, "gpu": 64}
DEFAULT_CPU_RUNTIME = "onnxruntime"
"""Measured on the tiny model in the local Triton (see README): faster than torch at the small
batches a CPU demo sees."""

VARIANT_FLAVOR: dict[str, images.ImageFlavor] = {
    # torch in the image's Python: NVIDIA documents it for this flavour (images.py says where)
    "python": images.TENSORRT_LLM,
    "onnx": images.STOCK,
    "tensorrt": images.STOCK,
}
"""The Triton image flavour each variant needs (the chart's ``image.flavor``); the python
variant on its onnxruntime CPU runtime needs the onnxruntime Python package too, which no
flavour has (``image_flavor``)."""

NO_FLAVOR_NOTE = (
    "The python variant's onnxruntime runtime needs the onnxruntime Python package, which no "
    "NGC Triton image has: it serves the local CPU demo. On a cluster, build --variant onnx "
    "--device cpu (image.flavor=py3) or --cpu-runtime torch."
)
"""What the config and the manifest say instead of an image flavour."""


@dataclass(frozen=True)
class BuildSettings:
    """What to build, and where."""

    variant: str
    """``python``, ``onnx`` or ``tensorrt``."""
    repository: Path
    """The model repository folder; the model goes in ``<repository>/<model_name>``."""
    size: str | None = None
    """``large``, ``base`` or ``tiny`` random weights; ``large`` if no checkpoint or model id
    is given."""
    seed: int = 0
    """Seed of the random weights."""
    checkpoint: Path | None = None
    """A local ``save_pretrained`` folder (``config.json`` plus weights) instead of random ones."""
    model_id: str | None = None
    """A Hugging Face Hub model id to fetch instead (``checkpoint.SQUAD_MODEL_ID``)."""
    revision: str | None = None
    """The Hub revision (branch, tag or commit) of ``model_id``; the default branch if unset."""
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
    cuda_graphs: bool | None = None
    """python variant on a GPU: replay batches from CUDA graphs captured per batch bucket at
    load. None: on, unless ``torch_compile``."""
    cuda_graph_max_batch_size: int = DEFAULT_LARGEST_BUCKET
    """python variant on a GPU: the largest batch replayed from a graph (capped at the max batch
    size); larger batches run eagerly."""
    gpu: str = tensorrt.DEFAULT_GPU
    """tensorrt: the GPU the engine is built for (``t4``, ``l4``, ``a100``, ``h100``)."""
    int8: bool = False
    """tensorrt: allow INT8 kernels."""
    int8_calibration_cache: str | None = None
    """tensorrt: calibration cache path inside the TensorRT container."""
    ngc_release: str = tensorrt.NGC_RELEASE
    """The NGC release (``YY.MM``) of the Triton image that serves the repository (the chart's
    ``image.release``); a TensorRT engine is built in that release's TensorRT."""
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

    @property
    def random_weights(self) -> bool:
        """True when neither a checkpoint nor a model id gives real weights."""
        return self.checkpoint is None and self.model_id is None

    @property
    def graphed(self) -> bool:
        """Whether the served model replays CUDA graphs: the python variant on a GPU, asked
        for or by default (not with ``torch_compile``)."""
        if self.variant != "python" or self.resolved_device != "gpu":
            return False
        return not self.torch_compile if self.cuda_graphs is None else self.cuda_graphs

    @property
    def graph_buckets(self) -> tuple[int, ...]:
        """The batch sizes the served model captures graphs for (none where not graphed)."""
        if not self.graphed:
            return ()
        largest = min(self.cuda_graph_max_batch_size, self.resolved_max_batch_size)
        return bucket_sizes(largest)

    @property
    def python_runtime(self) -> str:
        """The python variant's runtime: ``torch`` on a GPU, the chosen one on a CPU."""
        return self.cpu_runtime if self.resolved_device == "cpu" else "torch"


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
            f"image that will serve the model, its chart value image.release (such as "
            f"--ngc-release {tensorrt.NGC_RELEASE})"
        )
    sources = [
        name
        for name, value in (
            ("a size (random weights)", settings.size),
            ("a checkpoint folder", settings.checkpoint),
            ("a model id", settings.model_id),
        )
        if value is not None
    ]
    if len(sources) > 1:
        raise BuildError(
            f"give one of a size (random weights), a checkpoint folder or a model id, not "
            f"{' and '.join(sources)}: a checkpoint's config.json sets the size"
        )
    if settings.size is not None:
        _choice(settings.size, sorted(network.SIZES), "size")
    if settings.revision is not None and settings.model_id is None:
        raise BuildError("a revision applies to a model id only: add --model-id or drop it")
    if settings.variant == "tensorrt" and settings.resolved_device != "gpu":
        raise BuildError("a TensorRT engine runs on a GPU only: drop --device cpu")
    if settings.cuda_graphs and (settings.variant != "python" or settings.resolved_device != "gpu"):
        raise BuildError(
            "CUDA graphs apply to the python variant on a GPU only: drop --cuda-graphs, or "
            "build --variant python --device gpu"
        )
    if settings.cuda_graphs and settings.torch_compile:
        raise BuildError(
            "--torch-compile and --cuda-graphs exclude each other (a compiled network is not "
            "captured by hand): drop one of them"
        )
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
        ("CUDA graph max batch size", settings.cuda_graph_max_batch_size, 1),
    ):
        if value < low:
            raise BuildError(f"{name} must be at least {low}, not {value}")
    if settings.checkpoint is not None:
        checkpoint.check_checkpoint(settings.checkpoint)
    if settings.model_id is not None:
        checkpoint.check_model_id(settings.model_id)
    if settings.model_dir.exists() and not settings.replace:
        raise BuildError(
            f"{settings.model_dir} already exists: remove it, choose another repository or "
            "model name, or pass --replace to replace it"
        )
    if settings.repository.exists() and not settings.repository.is_dir():
        raise BuildError(f"{settings.repository} exists and is not a folder")


def random_weights_warning(settings: BuildSettings) -> str:
    """What the build, the config and the manifest say when the weights are random."""
    size = settings.size or network.DEFAULT_SIZE
    return (
        f"RANDOM WEIGHTS ({size}, seed {settings.seed}): this model's answers are meaningless; "
        "it measures the cost of serving only. For real answers build with --model-id "
        f"{checkpoint.SQUAD_MODEL_ID} (or --checkpoint DIR, a save_pretrained folder)"
    )


def image_flavor(settings: BuildSettings) -> images.ImageFlavor | None:
    """The Triton image flavour that serves what ``settings`` build, or None for the python
    variant's onnxruntime CPU runtime, which needs the onnxruntime Python package next to torch
    (the local demo's Triton has both; no NGC flavour does)."""
    if settings.variant == "python" and settings.python_runtime == "onnxruntime":
        return None
    return VARIANT_FLAVOR[settings.variant]
