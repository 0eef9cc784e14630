"""The model's ``config.pbtxt``: the contract's tensors, the variant's platform or backend, the
dynamic batcher, the instances and the warm-up Triton runs before it reports the model ready."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

from samples.bert import contract, tensorrt
from samples.bert.build_settings import (
    NO_FLAVOR_NOTE,
    BuildSettings,
    image_flavor,
    random_weights_warning,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Where ``config.pbtxt.j2`` is."""


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
    notes: Sequence[str] = (),
) -> str:
    """A ``config.pbtxt`` whose tensors are the contract's (names and types from
    ``contract.py``) at ``sequence_length``; ``logits_per_token`` other than the contract's
    makes a model that breaks it on purpose (a test's wrong answers). ``manifest``: the writer
    puts MANIFEST.json next to it. ``notes``: comment lines at the top (the image the model
    needs, a random-weights warning)."""
    inputs = [contract.TensorSpec(t.name, t.datatype, (sequence_length,)) for t in contract.INPUTS]
    outputs = [
        contract.TensorSpec(t.name, t.datatype, (sequence_length, logits_per_token))
        for t in contract.OUTPUTS
    ]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("config.pbtxt.j2").render(
        model_name=model_name,
        description=description,
        manifest=manifest,
        notes=list(notes),
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
        runtime = settings.python_runtime
        parameters = python_parameters(settings)
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
        notes=config_notes(settings),
    )


def python_parameters(settings: BuildSettings) -> dict[str, str]:
    """The python variant's ``parameters`` in ``config.pbtxt`` (what ``model.py`` reads)."""
    parameters = {"runtime": settings.python_runtime}
    if settings.resolved_device == "gpu":
        parameters["precision"] = "fp16" if settings.fp16 else "fp32"
        parameters["torch_compile"] = "true" if settings.torch_compile else "false"
        parameters["cuda_graphs"] = "true" if settings.graphed else "false"
        if settings.graphed:
            parameters["cuda_graph_max_batch_size"] = str(max(settings.graph_buckets))
    else:
        parameters["cpu_threads"] = str(settings.cpu_threads)
    return parameters


def config_notes(settings: BuildSettings) -> list[str]:
    """The comment lines that head ``config.pbtxt``: the image flavour the model needs and,
    for random weights, the warning."""
    flavor = image_flavor(settings)
    if flavor is None:
        notes = [NO_FLAVOR_NOTE]
    else:
        notes = [f"Needs {flavor.chart_value} ({flavor.image(settings.ngc_release)})."]
    if settings.random_weights:
        notes.append(f"WARNING: {random_weights_warning(settings)}.")
    return notes


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
