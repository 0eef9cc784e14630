"""The python variant imports nothing its Triton image flavour lacks.

A python-backend model runs in the image's own Python, so a module the image lacks makes the
model fail to load, and with ``--model-control-mode=none`` the server exits and the pod
crash-loops. No NGC image can run here, so the image's side is ``samples/bert/images.py``: per
flavour, the modules NVIDIA documents (each entry cites where). This test builds each python
variant with the repository writer and walks the syntax tree of every ``.py`` file in the
model's version folder (what Triton loads), so a file the writer starts copying is checked
too. The standard library is that of the Python running the test (3.11 here; the images run
3.12, whose standard library holds every module used).

Cases:
- the torch runtime (GPU, and CPU with ``--cpu-runtime torch``) imports only the standard
  library and the modules of the flavour its config and manifest name (``trtllm-python-py3``),
  and not ``transformers``;
- the onnxruntime CPU runtime adds ``onnxruntime`` in its own file only, and names no flavour;
- the walk sees every import: no file imports by computed name (``importlib.import_module``,
  ``__import__``) or relative import, and every module file the model loads by path is there;
- every flavour a variant needs is a known one, and the python backend's base modules are in
  each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from samples.bert import contract, images
from samples.bert.build_settings import VARIANT_FLAVOR, BuildSettings, image_flavor
from samples.bert.repository import python_model_files, write_repository
from tests.samples.helpers import quiet

STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)


def _imports(path: Path) -> dict[str, list[int]]:
    """Top-level module name -> lines importing it, for one file; fails on imports the walk
    could not follow."""
    found: dict[str, list[int]] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name.split(".")[0], []).append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{path}:{node.lineno}: relative import"
            found.setdefault(node.module.split(".")[0], []).append(node.lineno)
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            assert name not in {"importlib.import_module", "import_module", "__import__"}, (
                f"{path}:{node.lineno}: an import by computed name hides a module from this check"
            )
    return found


def _loaded_by_path(path: Path) -> set[str]:
    """File names the model loads by path (``_sibling_module("bert_network.py")``)."""
    return {
        str(node.args[0].value)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "_sibling_module"
        and isinstance(node.args[0], ast.Constant)
    }


def _build(tmp_path: Path, *, device: str, runtime: str) -> tuple[BuildSettings, Path]:
    settings = BuildSettings(
        variant="python", repository=tmp_path, size="tiny", device=device, cpu_runtime=runtime
    )
    model_dir = write_repository(settings, progress=quiet, warn=quiet)
    return settings, model_dir / str(contract.DEFAULT_MODEL_VERSION)


def _third_party(version_dir: Path) -> dict[str, set[str]]:
    """Module -> files importing it, for every module outside the standard library."""
    modules: dict[str, set[str]] = {}
    for path in sorted(version_dir.glob("*.py")):
        for module in _imports(path):
            if module not in STANDARD_LIBRARY:
                modules.setdefault(module, set()).add(path.name)
    return modules


@pytest.mark.parametrize(("device", "runtime"), [("gpu", "torch"), ("cpu", "torch")])
def test_torch_runtime_imports_only_what_its_flavor_has(
    tmp_path: Path, device: str, runtime: str
) -> None:
    settings, version_dir = _build(tmp_path, device=device, runtime=runtime)
    flavor = image_flavor(settings)
    assert flavor is images.TENSORRT_LLM
    assert sorted(p.name for p in version_dir.glob("*.py")) == sorted(
        python_model_files(settings).values()
    )
    modules = _third_party(version_dir)
    assert set(modules) <= flavor.python_modules, (
        f"{sorted(set(modules) - flavor.python_modules)} are not in {flavor.name}: "
        f"{flavor.evidence}"
    )
    assert set(modules) == {"torch", "triton_python_backend_utils"}
    assert "transformers" not in modules


def test_onnxruntime_runtime_keeps_onnxruntime_in_its_own_file(tmp_path: Path) -> None:
    settings, version_dir = _build(tmp_path, device="cpu", runtime="onnxruntime")
    assert image_flavor(settings) is None
    modules = _third_party(version_dir)
    assert modules.pop("onnxruntime") == {"bert_onnxruntime.py"}
    assert set(modules) <= images.TENSORRT_LLM.python_modules


@pytest.mark.parametrize(("device", "runtime"), [("gpu", "torch"), ("cpu", "onnxruntime")])
def test_every_file_loaded_by_path_is_copied(tmp_path: Path, device: str, runtime: str) -> None:
    _, version_dir = _build(tmp_path, device=device, runtime=runtime)
    model = version_dir / "model.py"
    loaded = _loaded_by_path(model)
    assert "bert_network.py" in loaded
    copied = {p.name for p in version_dir.glob("*.py")}
    # Each runtime's own file is loaded only on that runtime, and copied only for it.
    other_runtime = "bert_cuda_graphs.py" if runtime == "onnxruntime" else "bert_onnxruntime.py"
    assert loaded - {other_runtime} <= copied
    assert other_runtime not in copied


def test_every_variant_needs_a_known_flavor() -> None:
    for variant, flavor in VARIANT_FLAVOR.items():
        assert images.FLAVORS[flavor.name] is flavor, variant
    for flavor in images.FLAVORS.values():
        assert "python" in flavor.backends
        assert flavor.python_modules >= images.PYTHON_BACKEND_MODULES
        assert flavor.evidence
    assert "onnxruntime" in images.STOCK.backends and "tensorrt" in images.STOCK.backends
