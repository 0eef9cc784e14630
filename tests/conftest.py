"""Fixtures shared by every test folder: paths to the real tools the Makefile installs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "chart"
SHARED_DIR = ROOT.parent / "shared"
CRDS_DIR = SHARED_DIR / "crds"


def require_crds() -> Path:
    """``../shared/crds``, or skip the calling test with the reason where it is absent
    (a clone without the shared folder beside it)."""
    if not CRDS_DIR.is_dir():
        pytest.skip(f"{CRDS_DIR} is absent: the custom resource definitions are not available")
    return CRDS_DIR


def _tool(env_var: str, default: Path) -> Path:
    path = Path(os.environ.get(env_var) or default)
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        found = shutil.which(str(path))
        if found is None:
            pytest.fail(f"{path} is missing: run `make tools` (or set {env_var})")
        path = Path(found)
    return path


HELM_BINARIES = {
    "helm3": ("HELM3", ROOT / ".tools" / "helm-v3.19.0" / "helm"),
    "helm4": ("HELM4", ROOT / ".tools" / "helm-v4.1.4" / "helm"),
}


@pytest.fixture(scope="session", params=sorted(HELM_BINARIES))
def helm(request: pytest.FixtureRequest) -> Path:
    """Each real helm binary in turn: every chart test runs with Helm 3 and with Helm 4."""
    env_var, default = HELM_BINARIES[request.param]
    return _tool(env_var, default)
