"""Fixtures shared by every test folder: paths to the real tools the Makefile installs."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from common.helm_pins import helm_binary
from tests.kube.control_plane import ControlPlane, missing_prerequisite, running_control_plane
from tests.kube.kubelet import KubeletStandIn

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
    "helm3": ("HELM3", helm_binary("helm3")),
    "helm4": ("HELM4", helm_binary("helm4")),
}
"""Each helm: the variable that may name another binary, and where ``make tools`` puts the
pinned one (``scripts/helm-pins.toml``)."""
HELM3 = helm_binary("helm3")
HELM4 = helm_binary("helm4")


@pytest.fixture(scope="session", params=sorted(HELM_BINARIES))
def helm(request: pytest.FixtureRequest) -> Path:
    """Each real helm binary in turn: every chart test runs with Helm 3 and with Helm 4."""
    env_var, default = HELM_BINARIES[request.param]
    return _tool(env_var, default)


@pytest.fixture(scope="session")
def helm4() -> Path:
    """The helm the deployer image ships (Helm 4)."""
    env_var, default = HELM_BINARIES["helm4"]
    return _tool(env_var, default)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the control plane run last (in the order pytest chose for them): once started it
    keeps part of a core busy until the session ends, and the load tests that measure rates
    before it should not share the machine with it."""
    items.sort(key=lambda item: "control_plane" in getattr(item, "fixturenames", ()))


# -- the real Kubernetes control plane (../shared/k8s) and its kubelet stand-in ----------------

CHART_CRDS_DIR = ROOT / "tests" / "chart" / "crds"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.36.2 on loopback,
    shared by the whole session, with every CRD the chart's objects need installed; stopped
    (by the PIDs it started) at the end, whatever happened. Skips with the reason where the
    binaries or etcd are missing."""
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    crd_files = sorted(CRDS_DIR.glob("*.yaml")) + sorted(CHART_CRDS_DIR.glob("*.yaml"))
    with running_control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        plane.apply_files(crd_files)
        plane.wait_for_crds()
        yield plane


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[KubeletStandIn]:
    """The kubelet stand-in, with a CPU node and an ``nvidia-l4`` GPU node (one GPU) ready.
    Tests that depend on capacity add node pools of their own."""
    stand_in = KubeletStandIn(control_plane.api_client())
    stand_in.start()
    try:
        stand_in.add_node("cpu-node-1", cpu="16", memory="64Gi")
        stand_in.add_node("l4-node-1", accelerator="nvidia-l4", gpus=1, cpu="8", memory="32Gi")
        yield stand_in
    finally:
        stand_in.stop()


_namespace_numbers = itertools.count(1)


@pytest.fixture
def k8s_namespace(control_plane: ControlPlane, kubelet: KubeletStandIn) -> Iterator[str]:
    """A fresh namespace whose pods must meet Pod Security "restricted" (enforced by the real
    admission), deleted afterwards (not waited for: the namespace controller finishes it)."""
    name = f"t{next(_namespace_numbers)}-{os.getpid() % 10000}"
    api: Any = client.CoreV1Api(control_plane.api_client())
    api.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            api.delete_namespace(name)
