"""docs/layout.md, the map of the repository, matches the tree and the Makefile.

Cases: every Python module (outside the tests' own test files) is named in it by its path, and
every make verb (each Makefile target with a ``##`` help line, as ``make help`` lists them) as
``make VERB``; every module path and make verb it names exists. The lists come from the tree
(``git ls-files``, untracked files included, ignored ones such as the load-test bundle left out)
and the Makefile, so a new module or verb fails this test until the map says where it is. And no
Python file, tests included, is longer than 450 lines.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import PurePosixPath

from tests.conftest import ROOT

LAYOUT = ROOT / "docs" / "layout.md"
MAKE_VERB = re.compile(r"^([A-Za-z][\w-]*):[^=\n]*## ", re.MULTILINE)
"""A Makefile target with a help line (``make help`` prints these)."""
NAMED_MODULE = re.compile(r"`([\w./-]+\.py)`")
NAMED_VERB = re.compile(r"`make ([\w-]+)")
MAX_LINES = 450
"""The most lines a Python file has, tests included: a longer one is split along its seams."""


def python_files() -> list[str]:
    """Every Python file of the tree: tracked, or new and not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def python_modules() -> set[str]:
    """Every module of the tree but packages' ``__init__.py`` and the tests' own test files and
    fixtures (``tests/`` mirrors the other folders)."""
    modules = set()
    for name in python_files():
        path = PurePosixPath(name)
        if path.name == "__init__.py":
            continue
        is_test = path.name.startswith("test_") or path.name == "conftest.py"
        if path.parts[0] == "tests" and (is_test or "fixtures" in path.parts):
            continue
        modules.add(name)
    return modules


def make_verbs() -> set[str]:
    return set(MAKE_VERB.findall((ROOT / "Makefile").read_text()))


def test_the_tree_and_the_makefile_have_something_to_map() -> None:
    modules, verbs = python_modules(), make_verbs()
    assert {"deployer/actions.py", "standins/kube/control_plane.py"} <= modules
    assert {"test", "bench-deployer", "lint"} <= verbs
    assert not any(m.startswith("tests/") and "/test_" in m for m in modules)


def test_every_module_is_on_the_map() -> None:
    named = set(NAMED_MODULE.findall(LAYOUT.read_text()))
    assert sorted(python_modules() - named) == []


def test_every_make_verb_is_on_the_map() -> None:
    named = set(NAMED_VERB.findall(LAYOUT.read_text()))
    assert sorted(make_verbs() - named) == []


def makefile_targets() -> set[str]:
    """Every target of the Makefile, help line or not (``chart-docs`` is ``generate``'s alias)."""
    rules = re.findall(r"^([\w -]+):(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    return {target for rule in rules for target in rule.split()}


def test_the_map_names_nothing_that_is_gone() -> None:
    text = LAYOUT.read_text()
    # Paths only: a bare file name (`contract.py`) is named beside its folder.
    gone = [p for p in NAMED_MODULE.findall(text) if "/" in p and not (ROOT / p).is_file()]
    assert gone == []
    assert sorted(set(NAMED_VERB.findall(text)) - makefile_targets()) == []


def test_no_python_file_is_longer_than_the_limit() -> None:
    lines = {name: len((ROOT / name).read_text().splitlines()) for name in python_files()}
    assert len(lines) > 100, "the tree lists its Python files"
    too_long = {name: count for name, count in lines.items() if count > MAX_LINES}
    assert not too_long, f"split these along their seams ({MAX_LINES} lines at most): {too_long}"
