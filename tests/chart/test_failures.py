"""Values the chart refuses, each with a message that says what to set.

Cases: a mistyped key, a wrong type, replicas out of range, a bad enum, no model repository,
an existing ServiceAccount without a name, a grace period shorter than the drain, MIG with a
sharing strategy GKE does not combine with it, an in-pod MPS daemon without GPUs, on a GPU
shared with other pods, or at a relative path, an extra argument not written `--flag=value`,
bad ingress, autoscaling, standby and security combinations, a standby priority the cluster
autoscaler would ignore (below its cutoff, -10), a progress deadline shorter than the startup
budget, a regional Gateway class whose proxy-only subnet the NetworkPolicy is not told,
Kubernetes older than 1.30. Every one of these checks is in chart/templates/_validate.tpl: no
other template calls ``fail`` or ``required``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import HelmFailedError, render_chart
from tests.conftest import CHART_DIR

REPO = {"modelRepository": "gs://bucket/models"}

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("mistyped-key", {**REPO, "replicaCont": 2}, "additional properties 'replicaCont'"),
    ("wrong-type", {**REPO, "replicaCount": "two"}, "/replicaCount': got string, want integer"),
    ("replicas-too-many", {**REPO, "replicaCount": 101}, "/replicaCount': maximum"),
    ("replicas-negative", {**REPO, "replicaCount": -1}, "/replicaCount': minimum"),
    ("bad-enum", {**REPO, "service": {"type": "Ingress"}}, "/service/type"),
    ("nested-mistyped-key", {**REPO, "gpu": {"cuont": 1}}, "additional properties 'cuont'"),
    ("no-model-repository", {}, "modelRepository is required: set it"),
    (
        "existing-account-unnamed",
        {**REPO, "serviceAccount": {"create": False}},
        "serviceAccount.name is required when serviceAccount.create is false",
    ),
    (
        "grace-shorter-than-drain",
        {**REPO, "terminationGracePeriodSeconds": 20},
        "raise terminationGracePeriodSeconds to at least 45",
    ),
    (
        "mig-with-mps",
        {**REPO, "gpu": {"partitionSize": "1g.5gb", "sharing": {"strategy": "mps"}}},
        "gpu.partitionSize (MIG) combines only with gpu.sharing.strategy=time-sharing",
    ),
    (
        "mps-without-gpu",
        {**REPO, "gpu": {"count": 0, "mps": {"enabled": True}}},
        "gpu.mps.enabled needs GPUs: set gpu.count",
    ),
    (
        "mps-daemon-on-a-shared-gpu",
        {**REPO, "gpu": {"sharing": {"strategy": "mps"}, "mps": {"enabled": True}}},
        "gpu.sharing.strategy=mps shares them with other pods (with mps, GKE runs the daemon)",
    ),
    (
        "mps-control-path-not-absolute",
        {**REPO, "gpu": {"mps": {"enabled": True, "controlPath": "nvidia-cuda-mps-control"}}},
        "/gpu/mps/controlPath",
    ),
    ("extra-arg-not-a-flag", {**REPO, "server": {"extraArgs": ["load bert"]}}, "extraArgs/0"),
    (
        "min-above-max",
        {
            **REPO,
            "autoscaling": {
                "enabled": True,
                "metric": "gpuDutyCycle",
                "minReplicas": 5,
                "maxReplicas": 2,
            },
        },
        "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (2)",
    ),
    (
        "queue-metric-without-scraping",
        {**REPO, "autoscaling": {"enabled": True, "metric": "queueTime"}},
        "set metrics.podMonitoring.enabled=true",
    ),
    (
        "keda-without-project",
        {**REPO, "autoscaling": {"enabled": True, "engine": "keda", "metric": "gpuDutyCycle"}},
        "set autoscaling.keda.projectId to the cluster's Google Cloud project ID",
    ),
    (
        "keda-rate-window-shorter-than-two-scrapes",
        {
            **REPO,
            "metrics": {"podMonitoring": {"enabled": True, "interval": "30s"}},
            "autoscaling": {
                "enabled": True,
                "engine": "keda",
                "keda": {"projectId": "my-project", "rateWindow": "45s"},
            },
        },
        "autoscaling.keda.rateWindow (45s) spans fewer than two scrapes",
    ),
    (
        "keda-queue-metric-without-scraping",
        {
            **REPO,
            "autoscaling": {
                "enabled": True,
                "engine": "keda",
                "metric": "pendingRequests",
                "keda": {"projectId": "my-project"},
            },
        },
        "with autoscaling.engine=keda reads Triton's metrics as Managed Prometheus stores them",
    ),
    (
        "duty-cycle-without-gpu",
        {**REPO, "gpu": {"count": 0}, "autoscaling": {"enabled": True, "metric": "gpuDutyCycle"}},
        "autoscaling.metric=gpuDutyCycle needs GPUs",
    ),
    ("unknown-ingress-mode", {**REPO, "ingress": {"mode": "nginx"}}, "/ingress/mode"),
    (
        "gateway-api-without-class",
        {
            **REPO,
            "ingress": {
                "mode": "gatewayApi",
                "grpc": {"enabled": False},
                "gatewayApi": {"className": ""},
            },
        },
        "ingress.gatewayApi.className is empty",
    ),
    (
        "gateway-api-without-parent",
        {
            **REPO,
            "ingress": {
                "mode": "gatewayApi",
                "grpc": {"enabled": False},
                "gatewayApi": {"createGateway": False},
            },
        },
        "set ingress.gatewayApi.parentRef.name",
    ),
    (
        "gateway-api-grpc-sharing-the-http-host",
        {**REPO, "ingress": {"mode": "gatewayApi", "host": "a.example.com"}},
        "set ingress.grpc.host to its own name",
    ),
    (
        "istio-without-gateway",
        {
            **REPO,
            "ingress": {
                "mode": "istio",
                "host": "t.example.com",
                "istio": {"createGateway": False},
            },
        },
        "needs ingress.istio.existingGateway",
    ),
    (
        "canary-without-ingress",
        {**REPO, "ingress": {"canary": {"enabled": True, "serviceName": "next"}}},
        "ingress.canary splits traffic at the ingress",
    ),
    (
        "canary-without-service",
        {
            **REPO,
            "ingress": {"mode": "istio", "host": "t.example.com", "canary": {"enabled": True}},
        },
        "needs ingress.canary.serviceName",
    ),
    (
        "canary-is-itself",
        {
            **REPO,
            "ingress": {
                "mode": "istio",
                "host": "t.example.com",
                "canary": {"enabled": True, "serviceName": "triton-triton-inference-server"},
            },
        },
        "names this release's own Service",
    ),
    ("canary-weight-over-100", {**REPO, "ingress": {"canary": {"weight": 101}}}, "weight"),
    (
        "tls-without-secret",
        {**REPO, "ingress": {"mode": "istio", "tls": {"enabled": True}}},
        "ingress.tls.enabled needs ingress.tls.secretName",
    ),
    (
        "redirect-without-tls",
        {**REPO, "ingress": {"mode": "istio", "tls": {"httpsRedirect": True}}},
        "set ingress.tls.enabled=true",
    ),
    (
        "regional-gateway-without-proxy-only-subnet",
        {
            **REPO,
            "ingress": {"mode": "gatewayApi", "host": "t.example.com", "grpc": {"enabled": False}},
        },
        "set networkPolicy.proxyOnlySubnet to its range",
    ),
    (
        "proxy-only-subnet-not-a-cidr",
        {**REPO, "networkPolicy": {"proxyOnlySubnet": "10.129.0.0"}},
        "/networkPolicy/proxyOnlySubnet",
    ),
    (
        "canary-ingress-mode-on-a-routing-release",
        {
            **REPO,
            "ingress": {"mode": "istio", "host": "t.example.com"},
            "networkPolicy": {"ingressMode": "gatewayApi"},
        },
        "leave networkPolicy.ingressMode empty",
    ),
    (
        "istio-without-host",
        {**REPO, "ingress": {"mode": "istio"}},
        "ingress.mode=istio needs ingress.host",
    ),
    (
        "istio-gateway-for-a-wildcard",
        {**REPO, "ingress": {"mode": "istio", "host": "*.example.com"}},
        "a wildcard host would overlap other releases' hosts",
    ),
    (
        "istio-shared-gateway-with-a-wildcard",
        {
            **REPO,
            "ingress": {
                "mode": "istio",
                "host": "*.example.com",
                "istio": {"createGateway": False, "existingGateway": "istio-system/shared"},
            },
        },
        "name the host exactly",
    ),
    (
        "istio-gateway-for-a-wildcard-grpc-host",
        {**REPO, "ingress": {"mode": "istio", "host": "t.example.com", "grpc": {"host": "*.g.io"}}},
        "IST0145 ConflictingGateways",
    ),
    (
        "standby-without-gpu",
        {**REPO, "gpu": {"count": 0}, "standby": {"enabled": True}},
        "standby keeps GPU nodes warm, but gpu.count is 0",
    ),
    ("standby-priority-not-below-zero", {**REPO, "standby": {"priority": 10}}, "priority"),
    # The cluster autoscaler adds no node for pods below -10 (--expendable-pods-priority-cutoff).
    (
        "standby-priority-below-autoscaler-cutoff",
        {**REPO, "standby": {"enabled": True, "priority": -11}},
        "/standby/priority': minimum: got -11, want -10",
    ),
    (
        "progress-deadline-below-the-startup-budget",
        {
            **REPO,
            "progressDeadlineSeconds": 20,
            "probes": {"startup": {"periodSeconds": 1, "failureThreshold": 30}},
        },
        "progressDeadlineSeconds (20) is shorter than the startup budget, "
        "probes.startup.periodSeconds x failureThreshold (30 s)",
    ),
    (
        "startup-budget-raised-past-the-default-progress-deadline",
        {**REPO, "probes": {"startup": {"failureThreshold": 240}}},
        "raise progressDeadlineSeconds to at least 2400",
    ),
]


@pytest.mark.parametrize(("values", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_clear_message(helm: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailedError) as failure:
        render_chart(helm, values)
    assert message in failure.value.stderr


def test_refuses_kubernetes_older_than_tested(helm: Path) -> None:
    with pytest.raises(HelmFailedError) as failure:
        render_chart(helm, REPO, extra_args=["--kube-version", "1.29.0"])
    assert "chart requires kubeVersion: >=1.30.0-0" in failure.value.stderr


TEMPLATE_CHECK = re.compile(r"\{\{[^}]*\b(fail|required)\b[^}]*\}\}")
"""A template action that refuses to render: ``fail`` or ``required``."""


def test_every_render_time_check_is_in_validate_tpl() -> None:
    templates = CHART_DIR / "templates"
    checks = {
        path.relative_to(templates).as_posix(): len(TEMPLATE_CHECK.findall(path.read_text()))
        for path in sorted(templates.rglob("*"))
        if path.is_file()
    }
    elsewhere = {name: count for name, count in checks.items() if count and name != "_validate.tpl"}
    assert elsewhere == {}, "move these checks into _validate.tpl"
    assert checks["_validate.tpl"] > 0
