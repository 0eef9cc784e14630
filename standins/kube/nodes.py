"""The node half of the kubelet stand-in: GKE-shaped Nodes registered through the API, reported
Ready and their Leases renewed, so the node lifecycle controller lifts the not-ready taint and
never evicts their pods."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

HEARTBEAT_S = 10.0
"""How often each node renews its Lease and reports Ready: a kubelet's own interval (a quarter
of the 40 s lease), well inside the node lifecycle controller's grace period."""
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
GKE_NODEPOOL = "cloud.google.com/gke-nodepool"
GPU_RESOURCE = "nvidia.com/gpu"


def now() -> str:
    """The API's timestamp format, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeSpec:
    """A node to register."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()
    cpu: str = "8"
    memory: str = "32Gi"
    gpus: int = 0
    address: str = "127.0.0.1"


def gke_node(
    name: str,
    *,
    accelerator: str | None = None,
    gpus: int = 0,
    pool: str | None = None,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    cpu: str = "8",
    memory: str = "32Gi",
) -> NodeSpec:
    """A node shaped like GKE's: its pool label, and on a GPU pool the accelerator label, the
    ``nvidia.com/gpu=present:NoSchedule`` taint GKE puts on GPU nodes and the GPU capacity."""
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        GKE_NODEPOOL: pool or ("gpu-pool" if accelerator else "default-pool"),
        **(labels or {}),
    }
    all_taints = list(taints)
    if accelerator:
        all_labels[GKE_ACCELERATOR] = accelerator
        all_taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
        gpus = gpus or 1
    return NodeSpec(
        name=name, labels=all_labels, taints=all_taints, cpu=cpu, memory=memory, gpus=gpus
    )


def _ready_condition(message: str | None = None) -> dict[str, str]:
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "lastHeartbeatTime": now(),
    }
    if message:
        condition |= {"message": message, "lastTransitionTime": condition["lastHeartbeatTime"]}
    return condition


class Nodes:
    """The stand-in's nodes: registration, heartbeats, removal."""

    def __init__(self, api_client: client.ApiClient, errors: list[str]) -> None:
        # Any: the typed client refuses the plain dicts this module sends as bodies.
        self._core: Any = client.CoreV1Api(api_client)
        self._coordination: Any = client.CoordinationV1Api(api_client)
        self._specs: dict[str, NodeSpec] = {}
        self._lock = threading.Lock()
        self._errors = errors

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._specs

    def address(self, name: str) -> str:
        with self._lock:
            return self._specs[name].address

    def register(self, spec: NodeSpec, *, wait: bool = True) -> str:
        """Create the Node, report it Ready with its capacity, start its Lease; with ``wait``,
        return once the node lifecycle controller has lifted the not-ready taint."""
        capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": "110"}
        capacity["ephemeral-storage"] = "100Gi"
        if spec.gpus:
            capacity[GPU_RESOURCE] = str(spec.gpus)
        self._core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": spec.name, "labels": dict(spec.labels)},
                "spec": {"taints": [dict(t) for t in spec.taints]},
            }
        )
        with self._lock:
            self._specs[spec.name] = replace(spec)
        self._report(spec, capacity)
        self._renew_lease(spec.name)
        if wait:
            self._wait_schedulable(spec.name)
        return spec.name

    def remove(self, name: str) -> None:
        with self._lock:
            self._specs.pop(name, None)
        with contextlib.suppress(client.ApiException):
            self._core.delete_node(name)

    def heartbeat(self) -> None:
        """Report every node Ready and renew its Lease, once (call every ``HEARTBEAT_S``)."""
        with self._lock:
            names = list(self._specs)
        for name in names:
            try:
                self._renew_lease(name)
                self._core.patch_node_status(name, {"status": {"conditions": [_ready_condition()]}})
            except client.ApiException as exc:
                if exc.status != 404:
                    self._errors.append(f"heartbeat {name}: {exc.status} {exc.reason}")

    def _report(self, spec: NodeSpec, capacity: Mapping[str, str]) -> None:
        status = {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": spec.address},
                {"type": "Hostname", "address": spec.name},
            ],
            "conditions": [_ready_condition("kubelet stand-in is posting ready status")],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.36.2",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "containerd://stand-in",
                "osImage": "Container-Optimized OS",
                "kernelVersion": "6.6",
                "machineID": spec.name,
                "systemUUID": spec.name,
                "bootID": spec.name,
            },
        }
        self._core.patch_node_status(spec.name, {"status": status})

    def _renew_lease(self, name: str) -> None:
        body = {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": _now_micro(),
            },
        }
        try:
            self._coordination.patch_namespaced_lease(name, "kube-node-lease", body)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            self._coordination.create_namespaced_lease("kube-node-lease", body)

    def _wait_schedulable(self, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            taints = self._core.read_node(name).spec.taints or []
            if not any(t.key.startswith("node.kubernetes.io/") for t in taints):
                return
            time.sleep(0.2)
        raise TimeoutError(f"node {name} still has a not-ready taint after {timeout_s} s")
