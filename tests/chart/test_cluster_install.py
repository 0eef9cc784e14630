"""The chart installed for real with `helm install` on the local Kubernetes 1.36 control plane
(tests/kube), whose API server holds the Istio, Gateway API and GKE CRDs and enforces Pod
Security "restricted" in each test's namespace.

Cases: two Istio releases in one namespace, one installed by Helm 3 and one by Helm 4, both
land, and the Gateways the API server holds do not conflict by Istio's IST0145 rule; a release
with no host is refused before anything is created.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.chart.helpers import conflicting_istio_gateways
from tests.conftest import CHART_DIR, HELM_BINARIES
from tests.kube.control_plane import ControlPlane

pytestmark = pytest.mark.slow

HELM3, HELM4 = (HELM_BINARIES[name][1] for name in ("helm3", "helm4"))


def helm_install(
    plane: ControlPlane, helm: Path, release: str, namespace: str, *settings: str
) -> subprocess.CompletedProcess[str]:
    """`helm install` of the chart against the control plane (no --wait: the objects are
    what these tests read)."""
    command = [str(helm), "install", release, str(CHART_DIR), "-n", namespace]
    command += ["--kubeconfig", str(plane.kubeconfig), "--set", "modelRepository=gs://b/m"]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def istio_gateways(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    api: Any = client.CustomObjectsApi(plane.api_client())
    listed = api.list_namespaced_custom_object("networking.istio.io", "v1", namespace, "gateways")
    items: list[dict[str, Any]] = listed["items"]
    return items


def test_two_istio_releases_in_one_namespace_do_not_conflict(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    for helm, release in ((HELM3, "blue"), (HELM4, "green")):
        result = helm_install(
            control_plane,
            helm,
            release,
            k8s_namespace,
            "ingress.mode=istio",
            f"ingress.host={release}.example.com",
            "ingress.tls.enabled=true",
            "ingress.tls.secretName=cert",
        )
        assert result.returncode == 0, result.stderr
    gateways = istio_gateways(control_plane, k8s_namespace)
    assert sorted(g["metadata"]["name"] for g in gateways) == [
        "blue-triton-inference-server",
        "green-triton-inference-server",
    ]
    assert conflicting_istio_gateways(gateways) == []


def test_istio_release_without_host_creates_nothing(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    result = helm_install(control_plane, HELM4, "blue", k8s_namespace, "ingress.mode=istio")
    assert result.returncode != 0
    assert "ingress.mode=istio needs ingress.host" in result.stderr
    assert istio_gateways(control_plane, k8s_namespace) == []
    deployments = client.AppsV1Api(control_plane.api_client()).list_namespaced_deployment(
        k8s_namespace
    )
    assert deployments.items == []
