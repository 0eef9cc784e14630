"""What the release tests share: the Makefile's release targets run as a maintainer runs them,
and what `make release` published to the test registry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts import release
from security.images import default_triton_tag
from standins.registry import Registry
from standins.signing import Keyring
from tests.conftest import ROOT

CHART_NAME = release.chart_name(ROOT)
VERSION = release.declared_version(ROOT)
"""This release's version (chart/Chart.yaml)."""


def default_image_tag() -> str:
    """The Triton image tag the chart runs by default (``<release>-<flavor>``)."""
    return default_triton_tag(ROOT)


def offline_audit(tag: str) -> str:
    """A release check that needs no network, for ``RELEASE_AUDIT``: the bulletins' verdict on
    the Triton image ``tag`` (``make audit`` runs it too, with pip-audit, which asks PyPI)."""
    return f"{sys.executable} -m security triton {tag}"


def make(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``make ARGS`` in the repository, as a maintainer runs it."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(env),
        check=False,
    )


def signing_args(keyring: Keyring) -> list[str]:
    return [f"SIGNING_KEY={keyring.key}", f"SIGNING_KEYRING={keyring.secret}"]


@dataclass(frozen=True)
class Published:
    """The registry after `make release` published this release over the baseline."""

    registry: Registry
    keyring: Keyring
    chart: str
    """``oci://HOST/charts/NAME``: what ``helm install`` names."""
    repository: str
    """``charts/NAME``: the registry's repository."""
    output: str
    """What `make release` printed."""
    helm_home: Path

    def helm_env(self, home: Path | None = None) -> dict[str, str]:
        return self.registry.helm_env(home or self.helm_home)
