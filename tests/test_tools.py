"""The pinned tools the Makefile installs are the versions the project is tested with: each
helm binary is the release its pin (scripts/helm-pins.toml) names."""

from __future__ import annotations

import subprocess
from pathlib import Path

from common.helm_pins import helm_pin


def test_helm_binaries_are_the_pinned_releases(helm: Path) -> None:
    version = subprocess.run(
        [str(helm), "version", "--short"], check=True, capture_output=True, text=True
    ).stdout
    pinned = tuple(helm_pin(name)["version"] for name in ("helm3", "helm4"))
    assert version.startswith(pinned), version
