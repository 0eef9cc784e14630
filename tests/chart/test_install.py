"""The chart on a real Kubernetes 1.36 control plane (``../shared/k8s``), with Helm 3 and 4.

Cases:
- every object of every ci file passes a server-side dry run (CEL rules of the CRDs, defaulting,
  field validation: what the offline JSON-schema check cannot see);
- every ci file installs with ``--wait`` into a namespace that enforces Pod Security
  "restricted", after what it presupposes was created; Triton's pods land only on nodes of the
  chosen accelerator (the real scheduler decides); uninstall leaves nothing of the release.
  Both render the same objects with Helm 3 and 4 (``test_ci_values``), so each ci file is
  installed and dry-run with one of them, alternating by file: each Helm installs half the
  files, and the lifecycle below runs with both;
- the whole lifecycle on a representative subset: ``helm test`` (the test pod is admitted,
  scheduled and deleted by its hook policy; the kubelet stand-in decides its outcome, so a
  failing test pod is also shown to fail ``helm test``), ``helm upgrade`` with a changed value
  (the Deployment rolls; the restricted-API key survives through ``lookup``), ``helm rollback``,
  ``helm uninstall``;
- warm standby: with the GPU nodes full of placeholders, scaling Triton up preempts one (real
  preemption) and Triton becomes ready.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from tests.chart.cluster import (
    ACCELERATOR_LABEL,
    create_presupposed,
    helm_run,
    install,
    presupposed,
    register_node_pools,
    release_objects,
)
from tests.chart.helpers import CI_VALUES_FILES, render_chart
from tests.conftest import CHART_DIR, HELM_BINARIES, helm_path

LIFECYCLE_FILES = tuple(
    p for p in CI_VALUES_FILES if p.name.startswith(("00-", "20-", "33-", "52-"))
)
"""A representative subset for the whole lifecycle: the default, the Marketplace install, the
Gateway API and an existing admin Secret."""

_release_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def node_pools(kubelet: KubeletStandIn) -> KubeletStandIn:
    """The GKE node pools the ci files presuppose, registered once."""
    register_node_pools(kubelet)
    return kubelet


@pytest.fixture
def file_helm(ci_values_file: Path) -> Path:
    """The Helm that installs this ci file: Helm 3 and 4 take turns down the sorted files."""
    names = sorted(HELM_BINARIES)
    return helm_path(names[CI_VALUES_FILES.index(ci_values_file) % len(names)])


@pytest.fixture
def release() -> str:
    """A release name of its own for each install, so cluster-scoped objects never mix."""
    return f"rel{next(_release_numbers)}"


def _core(plane: ControlPlane) -> Any:
    return client.CoreV1Api(plane.api_client())


def _apps(plane: ControlPlane) -> Any:
    return client.AppsV1Api(plane.api_client())


def _triton_pods(plane: ControlPlane, namespace: str, deployment: dict[str, Any]) -> list[Any]:
    """The pods the Deployment selects, by its own selector."""
    labels = deployment["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods: list[Any] = _core(plane).list_namespaced_pod(namespace, label_selector=selector).items
    return pods


def _deployment_of(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("triton-inference-server")
    )


def test_every_object_passes_a_server_side_dry_run(
    file_helm: Path, control_plane: ControlPlane, k8s_namespace: str, ci_values_file: Path
) -> None:
    manifests = render_chart(file_helm, {}, values_files=[ci_values_file], namespace=k8s_namespace)
    stream = "\n---\n".join(json.dumps(m) for m in manifests)
    result = control_plane.run_kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=dry-run",
        "-n", k8s_namespace, "-f", "-", stdin=stream,
    )  # fmt: skip
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(manifests), result.stdout


def test_a_cel_rule_of_a_crd_is_enforced_by_the_dry_run(
    helm: Path, control_plane: ControlPlane, k8s_namespace: str
) -> None:
    """The dry run is not vacuous: the HealthCheckPolicy the chart rendered before its fix (no
    portSpecification) is refused by the CRD's CEL rule."""
    values = {
        "modelRepository": "gs://bucket/m",
        "ingress": {"mode": "gatewayApi", "grpc": {"enabled": False}},
        "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
    }
    manifests = render_chart(helm, values, namespace=k8s_namespace)
    policy = next(m for m in manifests if m["kind"] == "HealthCheckPolicy")
    del policy["spec"]["default"]["config"]["httpHealthCheck"]["portSpecification"]
    with pytest.raises(AssertionError, match="portSpecification"):
        control_plane.run_kubectl(
            "apply", "--server-side", "--dry-run=server", "-n", k8s_namespace, "-f", "-",
            stdin=json.dumps(policy),
        )  # fmt: skip


def _accelerator_of(manifests: list[dict[str, Any]]) -> str | None:
    selector = _deployment_of(manifests)["spec"]["template"]["spec"].get("nodeSelector")
    return (selector or {}).get(ACCELERATOR_LABEL)


def test_every_ci_file_installs_and_uninstalls(
    file_helm: Path,
    control_plane: ControlPlane,
    node_pools: KubeletStandIn,
    k8s_namespace: str,
    ci_values_file: Path,
    release: str,
) -> None:
    create_presupposed(control_plane, k8s_namespace, presupposed(ci_values_file))
    install(file_helm, control_plane, k8s_namespace, release=release, values_files=[ci_values_file])

    manifests = render_chart(file_helm, {}, values_files=[ci_values_file], release=release)
    deployment = _deployment_of(manifests)
    wanted_replicas = deployment["spec"].get("replicas", 1)
    pods = _triton_pods(control_plane, k8s_namespace, deployment)
    ready = [p for p in pods if p.status.phase == "Running"]
    assert len(ready) >= wanted_replicas
    accelerator = _accelerator_of(manifests)
    core = _core(control_plane)
    for pod in ready:
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels.get(ACCELERATOR_LABEL) == accelerator, pod.spec.node_name

    helm_run(file_helm, control_plane, "uninstall", release, "-n", k8s_namespace, "--wait")
    assert release_objects(control_plane, k8s_namespace, release) == []


@pytest.fixture(params=LIFECYCLE_FILES, ids=lambda p: p.name)
def lifecycle_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def _admin_key(plane: ControlPlane, namespace: str, release: str) -> dict[str, dict[str, str]]:
    secrets = _core(plane).list_namespaced_secret(
        namespace, label_selector=f"app.kubernetes.io/instance={release}"
    )
    return {s.metadata.name: dict(s.data or {}) for s in secrets.items if s.type == "Opaque"}


def test_lifecycle_test_upgrade_rollback_uninstall(
    helm: Path,
    control_plane: ControlPlane,
    node_pools: KubeletStandIn,
    k8s_namespace: str,
    lifecycle_file: Path,
    release: str,
) -> None:
    create_presupposed(control_plane, k8s_namespace, presupposed(lifecycle_file))
    install(helm, control_plane, k8s_namespace, release=release, values_files=[lifecycle_file])
    apps = _apps(control_plane)
    name = f"{release}-triton-inference-server"
    first = apps.read_namespaced_deployment(name, k8s_namespace)
    keys_before = _admin_key(control_plane, k8s_namespace, release)

    # helm test: the hook pod is admitted under "restricted", scheduled, run, then deleted.
    tested = helm_run(helm, control_plane, "test", release, "-n", k8s_namespace, "--timeout=120s")
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    upgrade = [
        "upgrade", release, str(CHART_DIR), "-n", k8s_namespace, "-f", str(lifecycle_file),
        "--set", "server.logVerbose=1", "--wait", "--timeout=180s",
    ]  # fmt: skip
    if "v4" in helm.parent.name:
        upgrade[-2] = "--wait=watcher"
    helm_run(helm, control_plane, *upgrade)
    rolled = apps.read_namespaced_deployment(name, k8s_namespace)
    assert rolled.metadata.generation > first.metadata.generation
    args = rolled.spec.template.spec.containers[0].args
    assert "--log-verbose=1" in args
    assert _admin_key(control_plane, k8s_namespace, release) == keys_before

    helm_run(helm, control_plane, "rollback", release, "1", "-n", k8s_namespace, "--wait")
    back = apps.read_namespaced_deployment(name, k8s_namespace)
    assert "--log-verbose=1" not in back.spec.template.spec.containers[0].args
    history = helm_run(helm, control_plane, "history", release, "-n", k8s_namespace, "-o=json")
    assert [h["revision"] for h in json.loads(history.stdout)] == [1, 2, 3]
    assert _admin_key(control_plane, k8s_namespace, release) == keys_before

    helm_run(helm, control_plane, "uninstall", release, "-n", k8s_namespace, "--wait")
    assert release_objects(control_plane, k8s_namespace, release) == []


def test_a_failing_test_pod_fails_helm_test(
    helm: Path,
    control_plane: ControlPlane,
    node_pools: KubeletStandIn,
    k8s_namespace: str,
    release: str,
) -> None:
    node_pools.set_behaviour(k8s_namespace, test_pods_succeed=False)
    install(
        helm, control_plane, k8s_namespace, release=release, sets=["modelRepository=gs://bucket/m"]
    )
    result = helm_run(
        helm, control_plane, "test", release, "-n", k8s_namespace, "--timeout=60s", check=False
    )
    assert result.returncode != 0
    assert "failed" in (result.stderr + result.stdout).lower()


@pytest.fixture
def full_pool(kubelet: KubeletStandIn, k8s_namespace: str) -> Iterator[str]:
    """A pool of two single-GPU T4 nodes of this test's own (nothing else lands there)."""
    names = [
        kubelet.add_node(f"{k8s_namespace}-t4-{i}", accelerator="nvidia-tesla-t4", gpus=1)
        for i in range(2)
    ]
    try:
        yield "nvidia-tesla-t4"
    finally:
        for name in names:
            kubelet.remove_node(name)


def test_scaling_up_preempts_a_standby_placeholder(
    helm: Path,
    control_plane: ControlPlane,
    full_pool: str,
    k8s_namespace: str,
    release: str,
) -> None:
    sets = [
        "modelRepository=gs://bucket/m",
        f"gpu.accelerator={full_pool}",
        "standby.enabled=true",
        "standby.replicas=1",
    ]
    install(helm, control_plane, k8s_namespace, release=release, sets=sets)
    apps, core = _apps(control_plane), _core(control_plane)
    standby = f"{release}-triton-inference-server-standby"
    placeholder = apps.read_namespaced_deployment(standby, k8s_namespace)
    assert placeholder.status.ready_replicas == 1, "the placeholder should hold the second GPU"

    name = f"{release}-triton-inference-server"
    apps.patch_namespaced_deployment_scale(name, k8s_namespace, {"spec": {"replicas": 2}})
    wait_until(
        "Triton at 2 ready replicas after preempting the placeholder",
        lambda: apps.read_namespaced_deployment(name, k8s_namespace).status.ready_replicas == 2,
        timeout_s=90,
    )
    events = core.list_namespaced_event(k8s_namespace, field_selector="reason=Preempted").items
    assert events, "no Preempted event: the scheduler did not preempt the placeholder"
    pending = [
        p
        for p in core.list_namespaced_pod(
            k8s_namespace, label_selector=f"app.kubernetes.io/instance={release}"
        ).items
        if p.status.phase == "Pending"
    ]
    assert pending and all(p.metadata.name.startswith(standby) for p in pending)
