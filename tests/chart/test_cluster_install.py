"""The chart installed for real with `helm install` on the local Kubernetes 1.36 control plane
(standins/kube), whose API server holds the Istio, Gateway API and GKE CRDs and enforces Pod
Security "restricted" in each test's namespace.

Cases: two Istio releases in one namespace, one installed by Helm 3 and one by Helm 4, both
land, the Gateways the API server holds do not conflict by Istio's IST0145 rule, and their
NetworkPolicies admit the ingress gateway's pods and no other pod of its namespace; a release
with no host is refused before anything is created; a Gateway API canary pair (a regional
class) lands with a HealthCheckPolicy for each backend of its routes, accepted by GKE's CRD, and
NetworkPolicies, as stored, that admit the proxy-only subnet on both ports, Google's health
checks on the probed port only, and nothing else from outside.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from standins.kube.control_plane import ControlPlane
from tests.chart.helpers import conflicting_istio_gateways, network_policies_admit
from tests.conftest import CHART_DIR, HELM_BINARIES

pytestmark = pytest.mark.slow

HELM3, HELM4 = (HELM_BINARIES[name][1] for name in ("helm3", "helm4"))


def helm_install(
    plane: ControlPlane, helm: Path, release: str, namespace: str, *settings: str
) -> subprocess.CompletedProcess[str]:
    """`helm install` of the chart against the control plane (no --wait: the objects are
    what these tests read)."""
    command = [str(helm), "install", release, str(CHART_DIR), "-n", namespace]
    command += ["--kubeconfig", str(plane.kubeconfig), "--set", "modelRepository=gs://bucket/m"]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def custom_objects(
    plane: ControlPlane, namespace: str, group: str, plural: str, version: str = "v1"
) -> list[dict[str, Any]]:
    api: Any = client.CustomObjectsApi(plane.api_client())
    items: list[dict[str, Any]] = api.list_namespaced_custom_object(
        group, version, namespace, plural
    )["items"]
    return items


def istio_gateways(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return custom_objects(plane, namespace, "networking.istio.io", "gateways")


def stored_policies_admit(
    plane: ControlPlane, namespace: str, release: str, port: str, source: dict[str, Any]
) -> bool:
    """Whether the NetworkPolicies the API server holds in ``namespace`` admit ``source`` to
    the Triton pods of ``release`` (their labels from the stored Deployment) on ``port``."""
    api_client: Any = plane.api_client()
    deployment: Any = client.AppsV1Api(api_client).read_namespaced_deployment(
        f"{release}-triton-inference-server", namespace
    )
    policies = client.NetworkingV1Api(api_client).list_namespaced_network_policy(namespace)
    return network_policies_admit(
        [api_client.sanitize_for_serialization(p) for p in policies.items],
        pod_labels=deployment.spec.template.metadata.labels,
        port=port,
        source=source,
    )


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
    gateway_pod = {"namespace": "istio-system", "labels": {"istio": "ingressgateway"}}
    other_pod = {"namespace": "istio-system", "labels": {"app": "istiod"}}
    for release in ("blue", "green"):
        for port in ("http", "grpc"):
            assert stored_policies_admit(control_plane, k8s_namespace, release, port, gateway_pod)
            assert not stored_policies_admit(control_plane, k8s_namespace, release, port, other_pod)


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


def test_gateway_api_canary_pair(control_plane: ControlPlane, k8s_namespace: str) -> None:
    subnet = "networkPolicy.proxyOnlySubnet=10.129.0.0/23"
    canary = helm_install(
        control_plane,
        HELM3,
        "triton-next",
        k8s_namespace,
        "networkPolicy.ingressMode=gatewayApi",
        subnet,
    )
    assert canary.returncode == 0, canary.stderr
    first = helm_install(
        control_plane,
        HELM4,
        "triton",
        k8s_namespace,
        "ingress.mode=gatewayApi",
        "ingress.host=t.example.com",
        "ingress.grpc.host=g.example.com",
        subnet,
        "ingress.canary.enabled=true",
        "ingress.canary.serviceName=triton-next-triton-inference-server",
    )
    assert first.returncode == 0, first.stderr

    gateway_group = "gateway.networking.k8s.io"
    backends = {
        ref["name"]
        for plural in ("httproutes", "grpcroutes")
        for route in custom_objects(control_plane, k8s_namespace, gateway_group, plural)
        for rule in route["spec"]["rules"]
        for ref in rule.get("backendRefs", [])
    }
    services: Any = client.CoreV1Api(control_plane.api_client()).list_namespaced_service(
        k8s_namespace
    )
    assert backends == {"triton-triton-inference-server", "triton-next-triton-inference-server"}
    assert backends <= {s.metadata.name for s in services.items}
    checks = custom_objects(
        control_plane, k8s_namespace, "networking.gke.io", "healthcheckpolicies"
    )
    assert {c["spec"]["targetRef"]["name"] for c in checks} == backends

    proxy, health_check, elsewhere = {"ip": "10.129.1.4"}, {"ip": "35.191.7.8"}, {"ip": "8.8.8.8"}
    for release in ("triton", "triton-next"):

        def admits(port: str, source: dict[str, Any], release: str = release) -> bool:
            return stored_policies_admit(control_plane, k8s_namespace, release, port, source)

        assert admits("http", proxy) and admits("grpc", proxy)
        assert admits("http", health_check) and not admits("grpc", health_check)
        assert not admits("http", elsewhere) and not admits("grpc", elsewhere)
