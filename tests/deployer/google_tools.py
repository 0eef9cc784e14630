"""Google's own Marketplace tooling, the oracle of the Marketplace tests.

``../shared/marketplace-k8s-app-tools/marketplace/deployer_util`` holds what GKE Marketplace
and ``mpdev`` run (``provision.py``, ``expand_config.py``, ``set_app_labels.py``,
``set_ownership.py`` ...). Its modules import each other by bare name, so pytest's
``pythonpath`` setting (pyproject.toml) puts that folder on the import path; a test that
needs one asks :func:`google_module`, which skips it with the reason where the folder is
absent.
"""

from __future__ import annotations

import copy
import functools
import importlib
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, SHARED_DIR, unavailable

DEPLOYER_UTIL = SHARED_DIR / "marketplace-k8s-app-tools" / "marketplace" / "deployer_util"
MPDEV_SCRIPTS = SHARED_DIR / "marketplace-k8s-app-tools" / "scripts"


def google_module(name: str) -> Any:
    """One of Google's ``deployer_util`` modules (``expand_config``, ``provision`` ...)."""
    if not DEPLOYER_UTIL.is_dir():
        unavailable(f"{DEPLOYER_UTIL} is absent: Google's Marketplace tooling is the oracle here")
    return importlib.import_module(name)


@functools.cache
def _google_schema(path: str, mtime_ns: int) -> Any:
    return google_module("config_helper").Schema.load_yaml_file(path)


def google_schema(path: Path = ROOT / "schema.yaml") -> Any:
    """Google's reading of a schema file (``config_helper.Schema``), read once per version of
    the file: its pure-Python YAML parse costs a quarter second, and the matrix asks hundreds
    of times. Google's code reads it and never changes it."""
    return _google_schema(str(path), path.stat().st_mtime_ns)


def provision_manifests(
    form: dict[str, Any],
    *,
    deployer_image: str,
    service_account: str = "tri-deployer-sa",
    schema: Path = ROOT / "schema.yaml",
) -> list[dict[str, Any]]:
    """What ``mpdev install`` (and the Marketplace UI) hands ``provision.process``: the
    deployer's values Secret, Role, RoleBinding and Job for the form's values."""
    provision = google_module("provision")
    return list(
        provision.process(
            google_schema(schema),
            copy.deepcopy(form),
            deployer_image=deployer_image,
            deployer_entrypoint="/bin/deploy.sh",
            version_repo=None,
            image_pull_secret=None,
            deployer_service_account_name=service_account,
            storage_class_provisioner=None,
        )
    )


def values_secret(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The ``NAME-deployer-config`` Secret among ``manifests``: its ``values.yaml`` is the
    file the deployer Job reads."""
    return next(
        m
        for m in manifests
        if m["kind"] == "Secret" and m["metadata"]["name"] == f"{name}-deployer-config"
    )
