"""The Python packages the deployer image installs, pinned, for pip-audit.

The image runs ``pip install -c constraints.txt .`` (``Dockerfile.deployer``): pyproject's three
dependencies, their own dependencies held by ``constraints.txt``. The same resolution, run with
``pip install --dry-run --report`` against PyPI, lists exactly those packages and versions, so
pip-audit can check them with ``--no-deps`` (no second resolution that could pick others).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from security.errors import AuditError

_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;#]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(root: Path) -> list[str]:
    """The deployer's own dependencies (pyproject.toml ``[project].dependencies``)."""
    deps: list[str] = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    return deps


def constraint_pins(text: str) -> dict[str, str]:
    """Package (canonical name) to version, from constraints.txt."""
    pins = {}
    for line in text.splitlines():
        if matched := _PIN.match(line.strip()):
            pins[_canonical(matched.group(1))] = matched.group(2)
    return pins


def pins_from_report(report: Mapping[str, Any]) -> dict[str, str]:
    """Package to version, from the JSON of ``pip install --dry-run --report``."""
    return {
        _canonical(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
    }


def unpinned(resolved: Mapping[str, str], constraints: Mapping[str, str]) -> list[str]:
    """Resolved packages constraints.txt does not hold: the image would take whatever is
    newest at build time."""
    return sorted(name for name in resolved if name not in constraints)


def resolve(root: Path, *, python: str = sys.executable) -> dict[str, Any]:
    """pip's report of what ``pip install -c constraints.txt <dependencies>`` installs (asks
    PyPI; installs nothing)."""
    command = [
        python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--disable-pip-version-check", "--report", "-",
        "-c", str(root / "constraints.txt"), *declared(root),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise AuditError(
            f"pip could not resolve the deployer's dependencies ({' '.join(command)}):\n"
            f"{done.stderr.strip()}\nIs PyPI reachable?"
        )
    report: dict[str, Any] = json.loads(done.stdout)
    return report
