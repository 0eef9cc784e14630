"""The pinned tools the Makefile installs are the versions the project is tested with."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_helm_binaries_are_the_pinned_releases(helm: Path) -> None:
    version = subprocess.run(
        [str(helm), "version", "--short"], check=True, capture_output=True, text=True
    ).stdout
    assert version.startswith(("v3.19.0", "v4.1.4")), version
