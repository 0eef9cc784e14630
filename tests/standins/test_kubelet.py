"""The control plane and the kubelet stand-in do what the other tests rely on.

Cases: the real scheduler binds a GPU pod only to a node of its accelerator, through GKE's taint;
the pod goes Running then Ready; a namespace can keep its pods unready or crash-looping; a
``restartPolicy: Never`` pod ends as the namespace says; a deleted pod is gone (graceful deletion
finished); a LoadBalancer Service gets a loopback address; Pod Security "restricted" is enforced
by the real admission; a ServiceAccount token from the TokenRequest API is what RBAC sees.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn

RESTRICTED_CONTAINER = {
    "name": "c",
    "image": "registry.example/app:1",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod(name: str, *, gpu: bool = False, restart: str = "Always") -> dict[str, Any]:
    container: dict[str, Any] = dict(RESTRICTED_CONTAINER)
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart}
    if gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        spec["nodeSelector"] = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def core(control_plane: ControlPlane) -> Any:
    """The core API as admin (Any: the typed client refuses plain dict bodies)."""
    return client.CoreV1Api(control_plane.api_client())


def condition(core: Any, namespace: str, name: str, kind: str) -> str | None:
    status = core.read_namespaced_pod(name, namespace).status
    for cond in status.conditions or []:
        if cond.type == kind:
            return str(cond.status)
    return None


def test_gpu_pod_is_scheduled_on_its_accelerator_then_ready(core: Any, k8s_namespace: str) -> None:
    core.create_namespaced_pod(k8s_namespace, pod("gpu", gpu=True))
    wait_until("Ready", lambda: condition(core, k8s_namespace, "gpu", "Ready") == "True")
    placed = core.read_namespaced_pod("gpu", k8s_namespace)
    node = core.read_node(placed.spec.node_name)
    assert node.metadata.labels["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert placed.status.phase == "Running"
    assert placed.status.pod_ip.startswith("127.")
    assert placed.status.container_statuses[0].ready is True


def test_pod_without_toleration_stays_off_the_gpu_node(core: Any, k8s_namespace: str) -> None:
    plain = pod("plain")
    plain["spec"]["nodeSelector"] = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    core.create_namespaced_pod(k8s_namespace, plain)
    message = wait_until(
        "an Unschedulable condition from the scheduler",
        lambda: next(
            (
                c.message
                for c in core.read_namespaced_pod("plain", k8s_namespace).status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        ),
    )
    assert "untolerated taint" in message


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [({"never_ready": True}, None), ({"crash_loop": True}, "CrashLoopBackOff")],
)
def test_namespace_behaviour_keeps_pods_unready(
    core: Any,
    kubelet: KubeletStandIn,
    k8s_namespace: str,
    behaviour: dict[str, bool],
    expected: str | None,
) -> None:
    kubelet.set_behaviour(k8s_namespace, ready_after_s=0.1, **behaviour)
    core.create_namespaced_pod(k8s_namespace, pod("p"))
    wait_until("Running", lambda: core.read_namespaced_pod("p", k8s_namespace).status.phase)
    time.sleep(1.5)
    status = core.read_namespaced_pod("p", k8s_namespace).status
    assert condition(core, k8s_namespace, "p", "Ready") == "False"
    waiting = status.container_statuses[0].state.waiting
    assert (waiting.reason if waiting else None) == expected


@pytest.mark.parametrize(("succeed", "phase"), [(True, "Succeeded"), (False, "Failed")])
def test_run_once_pod_ends_as_the_namespace_says(
    core: Any, kubelet: KubeletStandIn, k8s_namespace: str, succeed: bool, phase: str
) -> None:
    kubelet.set_behaviour(k8s_namespace, test_pods_succeed=succeed, finish_after_s=0.2)
    core.create_namespaced_pod(k8s_namespace, pod("once", restart="Never"))
    wait_until(phase, lambda: core.read_namespaced_pod("once", k8s_namespace).status.phase == phase)


def test_deleted_pod_is_gone(core: Any, k8s_namespace: str) -> None:
    core.create_namespaced_pod(k8s_namespace, pod("gone"))
    wait_until("Running", lambda: core.read_namespaced_pod("gone", k8s_namespace).status.phase)
    core.delete_namespaced_pod("gone", k8s_namespace)

    def absent() -> bool:
        try:
            core.read_namespaced_pod("gone", k8s_namespace)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until("the pod to be deleted", absent)


def test_load_balancer_gets_a_loopback_address(core: Any, k8s_namespace: str) -> None:
    service = {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"a": "b"}},
    }
    core.create_namespaced_service(k8s_namespace, service)
    ingress = wait_until(
        "a load-balancer address",
        lambda: core.read_namespaced_service("lb", k8s_namespace).status.load_balancer.ingress,
    )
    assert ingress[0].ip.startswith("127.")


def test_pod_security_restricted_is_enforced(core: Any, k8s_namespace: str) -> None:
    privileged = {
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]},
    }
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(k8s_namespace, privileged)
    assert refused.value.status == 403
    assert "violates PodSecurity" in str(refused.value.body)


def test_service_account_token_is_what_rbac_sees(
    control_plane: ControlPlane, core: Any, k8s_namespace: str
) -> None:
    core.create_namespaced_service_account(k8s_namespace, {"metadata": {"name": "reader"}})
    rbac: Any = client.RbacAuthorizationV1Api(control_plane.api_client())
    rbac.create_namespaced_role(
        k8s_namespace,
        {
            "metadata": {"name": "pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        k8s_namespace,
        {
            "metadata": {"name": "pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": k8s_namespace}],
        },
    )
    as_reader: Any = client.CoreV1Api(
        control_plane.api_client(control_plane.kubeconfig_for(k8s_namespace, "reader"))
    )
    assert as_reader.list_namespaced_pod(k8s_namespace).items == []
    with pytest.raises(client.ApiException) as refused:
        as_reader.list_namespaced_secret(k8s_namespace)
    assert refused.value.status == 403


def test_a_failed_heartbeat_is_recorded_and_the_next_one_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A heartbeat that raises (here as the client did when another thread changed os.environ
    while it read it) must not end the heartbeats: nodes that stop heartbeating go NotReady."""
    monkeypatch.setattr("standins.kube.kubelet.HEARTBEAT_S", 0.01)
    stand_in = KubeletStandIn(client.ApiClient())
    beats: list[float] = []

    def heartbeat() -> None:
        beats.append(time.monotonic())
        if len(beats) == 1:
            raise KeyError("PYTEST_CURRENT_TEST")

    monkeypatch.setattr(stand_in._nodes, "heartbeat", heartbeat)
    thread = threading.Thread(target=stand_in._heartbeat, daemon=True)
    thread.start()
    try:
        wait_until("heartbeats after a failed one", lambda: len(beats) >= 3, timeout_s=10)
    finally:
        stand_in._stop.set()
        thread.join(timeout=5)
    assert stand_in.errors == ["heartbeat: KeyError('PYTEST_CURRENT_TEST')"]
