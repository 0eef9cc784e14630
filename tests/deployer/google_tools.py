"""Google's own Marketplace tooling, the oracle of the Marketplace tests.

``../shared/marketplace-k8s-app-tools/marketplace/deployer_util`` holds what GKE Marketplace
and ``mpdev`` run (``provision.py``, ``expand_config.py``, ``set_app_labels.py``,
``set_ownership.py`` ...). Its modules import each other by bare name, so pytest's
``pythonpath`` setting (pyproject.toml) puts that folder on the import path; a test that
needs one asks :func:`google_module`, which skips it with the reason where the folder is
absent.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.conftest import SHARED_DIR

DEPLOYER_UTIL = SHARED_DIR / "marketplace-k8s-app-tools" / "marketplace" / "deployer_util"
MPDEV_SCRIPTS = SHARED_DIR / "marketplace-k8s-app-tools" / "scripts"


def google_module(name: str) -> Any:
    """One of Google's ``deployer_util`` modules (``expand_config``, ``provision`` ...)."""
    if not DEPLOYER_UTIL.is_dir():
        pytest.skip(f"{DEPLOYER_UTIL} is absent: Google's Marketplace tooling is the oracle here")
    return importlib.import_module(name)
