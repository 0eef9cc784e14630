"""The deployer image's hashed requirement files are current (``make image-requirements``
writes them; regenerating needs PyPI, so this checks them offline).

Cases:
- the runtime file pins exactly pyproject.toml's dependencies and everything they pull in, at
  the versions installed from constraints.txt (the ones the tests run), read from the
  installed packages' own metadata;
- the build file pins what pyproject.toml's build-system requires, at a version it allows;
- every pin carries one sha256, and nothing is pinned twice.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.image_requirements import BUILD, RUNTIME
from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(path: str) -> dict[str, tuple[str, list[str]]]:
    """Each pinned project to its version and hashes."""
    text = (ROOT / path).read_text().replace("\\\n", " ")
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s*(.*)$", line)
        if match:
            name = canonicalize_name(match[1])
            assert name not in found, f"{name} pinned twice in {path}"
            found[name] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", match[3]))
    return found


def installed_closure(requirements: list[str]) -> dict[str, str]:
    """The projects ``requirements`` pull in, as installed here, with their versions."""
    seen: dict[str, str] = {}
    todo = [(Requirement(r), frozenset[str]()) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        # Markers are evaluated for this interpreter and platform, which are the image's.
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": e}) for e in {"", *extras}
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        distribution = importlib.metadata.distribution(name)
        seen[name] = distribution.version
        wanted = frozenset(requirement.extras)
        todo += [(Requirement(r), wanted) for r in distribution.requires or []]
    return seen


def test_the_runtime_pins_are_the_tested_versions() -> None:
    pinned = pins(str(RUNTIME.relative_to(ROOT)))
    closure = installed_closure(PYPROJECT["project"]["dependencies"])
    assert {n: v for n, (v, _) in pinned.items()} == closure, "stale: run `make image-requirements`"


def test_the_build_pins_meet_the_build_system() -> None:
    pinned = pins(str(BUILD.relative_to(ROOT)))
    for text in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not pinned: run `make image-requirements`"
        assert requirement.specifier.contains(pinned[name][0]), text


def test_every_pin_has_one_hash() -> None:
    for lock in (RUNTIME, BUILD):
        for name, (_, hashes) in pins(str(lock.relative_to(ROOT))).items():
            assert len(hashes) == 1, f"{lock.name}: {name}"
