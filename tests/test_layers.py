"""The import contract of pyproject.toml (``lint-imports`` in ``make lint``) holds, and breaks
when an import crosses a layer.

Cases: the tree as it is keeps every contract; in a copy of the packages, each wrong import
breaks the contracts it should, named in the output with the offending import:

- layers: the sample importing the demo, a stand-in importing the tests or the benchmarks, a
  benchmark importing the tests, the load test importing the demo;
- products: the release checks importing the tests, and (with the layers) the sample or the
  demo importing the benchmarks, the demo importing a stand-in, the chart tooling importing
  the tests;
- deployer image: the deployer importing what its image lacks (``common``, numpy);
- load test: the load test importing the deployer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]
"""The packages the contracts name, as pyproject.toml lists them."""


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """The real ``lint-imports`` on ``tree`` (the packages and pyproject.toml)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"],
        cwd=tree,
        env={**os.environ, "COLUMNS": "400"},  # a contract's name on one line
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
    ("module", "line", "contracts"),
    [
        ("samples/bert/contract.py", "import demo.local", {"layers"}),
        ("samples/bert/repository.py", "from bench import clients", {"layers", "products"}),
        ("demo/run.py", "import bench.clients", {"layers", "products"}),
        ("standins/gcs_emulator.py", "import tests.conftest", {"layers"}),
        ("standins/registry.py", "from bench import deployer_cost", {"layers"}),
        ("bench/deployer_cost.py", "from tests import tiers", {"layers"}),
        ("loadtest/load_run.py", "import demo.local", {"layers"}),
        ("security/cli.py", "from tests import tiers", {"products"}),
        ("demo/local.py", "import standins.gcs_emulator", {"layers", "products"}),
        ("scripts/generate.py", "from tests import tiers", {"layers", "products"}),
        ("deployer/render.py", "from common import waiting", {"deployer image"}),
        ("deployer/values.py", "import numpy", {"deployer image"}),
        ("loadtest/load_plan.py", "import deployer.values", {"load test"}),
    ],
)
def test_a_wrong_import_breaks_its_contracts(
    tree: Path, module: str, line: str, contracts: set[str]
) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # the violation\n")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert {row.split(":")[0] for row in broken} == contracts, done.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in done.stdout, done.stdout


def test_every_package_of_the_tree_is_in_the_contract() -> None:
    """A new top-level package is named in the contract (or it would be checked by none)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(PACKAGES)
