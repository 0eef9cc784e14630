"""The helm releases the project uses, from their one pin (``scripts/helm-pins.toml``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PINS: Final = ROOT / "scripts" / "helm-pins.toml"
TOOLS: Final = ROOT / ".tools"
"""Where ``make tools`` installs them."""


def helm_pin(name: str) -> dict[str, str]:
    """The pin of ``name`` (``helm3`` or ``helm4``): its version, wheel and digests."""
    pins: dict[str, dict[str, str]] = tomllib.loads(PINS.read_text())
    return pins[name]


def helm_binary(name: str, tools: Path = TOOLS) -> Path:
    """Where ``make tools`` puts the binary of ``name``: ``<tools>/helm-<version>/helm``."""
    return tools / f"helm-{helm_pin(name)['version']}" / "helm"
