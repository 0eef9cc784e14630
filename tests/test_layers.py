"""The import contract of pyproject.toml (``lint-imports`` in ``make lint``) holds, and breaks
when an import crosses a layer.

Cases: the tree as it is keeps every contract; in a copy of the packages, the sample importing
the demo, the deployer importing the benchmarks, the demo importing the benchmarks, and the
deployer importing what its image lacks (``common``, numpy) each break a contract, named in
the output with the offending import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("bench", "demo", "samples", "deployer", "common")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """The real ``lint-imports`` on ``tree`` (the packages and pyproject.toml)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages' Python files and of pyproject.toml."""
    for package in PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            target = tmp_path / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("samples/bert/contract.py", "import demo.local", "layers"),
        ("samples/bert/client.py", "from bench import clients", "layers"),
        ("demo/run.py", "import bench.clients", "layers"),
        ("deployer/render.py", "from common import waiting", "deployer image"),
        ("deployer/values.py", "import numpy", "deployer image"),
    ],
)
def test_an_import_across_a_layer_breaks_the_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # the violation\n")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(f"{contract}:"), done.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in done.stdout, done.stdout
