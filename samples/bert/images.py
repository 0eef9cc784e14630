"""NGC's Triton image flavours, and what a python-backend model may import in each.

The chart serves ``nvcr.io/nvidia/tritonserver:<release>-<flavor>``; each variant of the sample
needs one flavour (``build_settings.image_flavor``), recorded in its ``config.pbtxt`` comment and
``MANIFEST.json`` so the chart value can be checked against it. A python-backend model runs in
the image's own Python, so it may import the standard library, the backend's
``triton_python_backend_utils`` and the packages NVIDIA documents for that flavour, nothing
else: ``tests/samples/test_image_flavors.py`` walks the imports of the files the repository
writer copies.

NVIDIA publishes no pip list per flavour; each entry below says where its modules are
documented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

REGISTRY_IMAGE: Final = "nvcr.io/nvidia/tritonserver"

PYTHON_BACKEND_MODULES: Final = frozenset({"triton_python_backend_utils", "numpy"})
"""In every flavour with the python backend: the backend's own module, and numpy, which
Triton's image build installs for it (``pip3 install "numpy<2"`` in
``dockerfile_prepare_container_linux`` of
https://github.com/triton-inference-server/server/blob/e1db8a603d863b1317ee859bdeea2be19959462e/build.py)."""


@dataclass(frozen=True)
class ImageFlavor:
    """One flavour of NGC's Triton image: the tag's suffix after ``<release>-``."""

    name: str
    """The tag suffix, and the chart's ``image.flavor`` value (``py3``)."""
    backends: tuple[str, ...]
    """The Triton backends the flavour ships."""
    python_modules: frozenset[str]
    """Top-level modules a python-backend model may import besides the standard library."""
    evidence: tuple[str, ...]
    """Where NVIDIA documents the above."""

    def tag(self, release: str) -> str:
        """The image tag for an NGC release (``YY.MM``)."""
        return f"{release}-{self.name}"

    def image(self, release: str) -> str:
        """The full image reference for an NGC release."""
        return f"{REGISTRY_IMAGE}:{self.tag(release)}"

    @property
    def chart_value(self) -> str:
        """How the chart is told: ``image.flavor=<name>``."""
        return f"image.flavor={self.name}"


STOCK: Final = ImageFlavor(
    name="py3",
    backends=("tensorrt", "onnxruntime", "pytorch", "tensorflow", "openvino", "python"),
    python_modules=PYTHON_BACKEND_MODULES,
    evidence=(
        "The chart's default. The onnxruntime backend serves the onnx variant, the tensorrt "
        "backend the tensorrt variant. No torch in the image's Python: a python-backend model "
        "importing it fails (https://github.com/triton-inference-server/server/issues/2532, "
        "https://github.com/triton-inference-server/server/issues/4302)",
    ),
)

PYTORCH_BACKEND: Final = ImageFlavor(
    name="pyt-python-py3",
    backends=("pytorch", "python"),
    python_modules=PYTHON_BACKEND_MODULES,
    evidence=(
        "'PyTorch' is the pytorch backend (libtorch, C++); the torch pip package is not "
        "documented in the image's Python: NVIDIA's pytorch backend asked users to 'make "
        "sure the PyTorch 2.0+ pip package is available in the same Python environment' "
        "(https://github.com/triton-inference-server/pytorch_backend/blob/"
        "db707513b5038f689d578e0f630f9e5a726fa925/README.md), and "
        "https://github.com/triton-inference-server/server/issues/5461 (open) shows "
        "23.02-pyt-python-py3 without torch in pip list",
    ),
)

TENSORRT_LLM: Final = ImageFlavor(
    name="trtllm-python-py3",
    backends=("tensorrtllm", "python"),
    python_modules=PYTHON_BACKEND_MODULES | {"torch"},
    evidence=(
        "NVIDIA's Release Compatibility Matrix lists this flavour's Torch version per release "
        "(26.05: Python 3.12.3, torch 2.10.0a0+b4e4ee81d3.nv25.12): "
        "https://github.com/triton-inference-server/server/blob/"
        "e1db8a603d863b1317ee859bdeea2be19959462e/docs/introduction/compatibility.md",
        "NVIDIA's own python-backend model for this image imports torch and numpy: "
        "https://github.com/triton-inference-server/tensorrtllm_backend/blob/"
        "01200cc4853faad8bac94a880cdc95e28dcd6c9c/all_models/inflight_batcher_llm/"
        "tensorrt_llm/1/model.py",
    ),
)

FLAVORS: Final = {flavor.name: flavor for flavor in (STOCK, PYTORCH_BACKEND, TENSORRT_LLM)}
