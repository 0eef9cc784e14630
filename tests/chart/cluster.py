"""What the chart's installs on the real control plane share: the GKE node pools the ci files
presuppose, the objects they say must exist first, and helm run against the server.

A ci file names what it presupposes in a comment line of its own::

    # Presupposes: ServiceAccount existing-triton; PriorityClass inference-high

Each entry is ``Kind [namespace/]name``; ``NodePool`` entries name a pool of
:data:`NODE_POOLS`, which every install finds registered. A kind with no factory here fails the
test that reads it, so a new ci file cannot presuppose something the tests do not create.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from common.processes import brief_go_environment
from standins.kube.control_plane import ControlPlane
from standins.kube.kubelet import KubeletStandIn
from standins.kube.nodes import GKE_ACCELERATOR
from tests.conftest import CHART_DIR

HELM_TIMEOUT = "180s"
ACCELERATOR_LABEL = GKE_ACCELERATOR


@dataclass(frozen=True)
class NodePool:
    """A GKE node pool as the tests register it: nodes labelled as GKE labels them."""

    accelerator: str
    nodes: int
    gpus_per_node: int
    labels: Mapping[str, str]


NODE_POOLS: dict[str, NodePool] = {
    # Plain L4 nodes (g2-standard-8): one GPU each.
    "nvidia-l4": NodePool("nvidia-l4", nodes=4, gpus_per_node=1, labels={}),
    # L4 time-shared by two pods: GKE advertises two nvidia.com/gpu per physical GPU.
    "nvidia-l4/time-sharing-2": NodePool(
        "nvidia-l4",
        nodes=2,
        gpus_per_node=2,
        labels={
            "cloud.google.com/gke-gpu-sharing-strategy": "time-sharing",
            "cloud.google.com/gke-max-shared-clients-per-gpu": "2",
        },
    ),
    # A100 40GB in MIG 1g.5gb slices: seven per GPU, each advertised as one nvidia.com/gpu.
    "nvidia-tesla-a100/1g.5gb": NodePool(
        "nvidia-tesla-a100",
        nodes=1,
        gpus_per_node=7,
        labels={"cloud.google.com/gke-gpu-partition-size": "1g.5gb"},
    ),
    # a3-highgpu-8g: eight H100 80GB.
    "nvidia-h100-80gb": NodePool("nvidia-h100-80gb", nodes=1, gpus_per_node=8, labels={}),
}


def register_node_pools(kubelet: KubeletStandIn, prefix: str = "pool") -> None:
    """Register every pool of :data:`NODE_POOLS` (once a session: existing nodes are kept)."""
    for key, pool in NODE_POOLS.items():
        slug = re.sub(r"[^a-z0-9]+", "-", key)
        for index in range(pool.nodes):
            name = f"{prefix}-{slug}-{index}"
            with contextlib.suppress(client.ApiException):
                kubelet.add_node(
                    name,
                    accelerator=pool.accelerator,
                    gpus=pool.gpus_per_node,
                    pool=slug,
                    labels=dict(pool.labels),
                    cpu="32",
                    memory="128Gi",
                )


@dataclass(frozen=True)
class Presupposed:
    kind: str
    namespace: str | None
    name: str


def presupposed(values_file: Path) -> list[Presupposed]:
    """What ``values_file`` says must exist before it installs."""
    found: list[Presupposed] = []
    for line in values_file.read_text().splitlines():
        match = re.match(r"#\s*Presupposes:\s*(.*)", line)
        if not match:
            continue
        for entry in filter(None, (e.strip() for e in match.group(1).split(";"))):
            kind, _, ref = entry.partition(" ")
            if kind == "NodePool":  # a pool's key has a slash of its own (accelerator/variant)
                found.append(Presupposed(kind, None, ref.strip()))
                continue
            namespace, _, name = ref.strip().rpartition("/")
            found.append(Presupposed(kind, namespace or None, name))
    return found


def _ensure_namespace(core: Any, name: str) -> None:
    with contextlib.suppress(client.ApiException):
        core.create_namespace({"metadata": {"name": name}})


def _create(plane: ControlPlane, manifest: Mapping[str, Any]) -> None:
    plane.run_kubectl(
        "apply", "--server-side", "--field-manager=test-setup", "-f", "-",
        stdin=json.dumps(manifest),
    )  # fmt: skip


def create_presupposed(plane: ControlPlane, namespace: str, wanted: Sequence[Presupposed]) -> None:
    """Create each presupposed object (in ``namespace`` unless the entry names another)."""
    core: Any = client.CoreV1Api(plane.api_client())
    factories: dict[str, Callable[[str, str], Mapping[str, Any] | None]] = {
        "ServiceAccount": lambda ns, name: {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns},
        },
        "Secret": lambda ns, name: {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"token": "an-admin-key-made-by-the-platform-team"},
        },
        "PriorityClass": lambda _, name: {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": 1000,
        },
        "IstioGateway": lambda ns, name: {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
                ],
            },
        },
        "Gateway": lambda ns, name: {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "gatewayClassName": "gke-l7-regional-external-managed",
                "listeners": [
                    {
                        "name": "https",
                        "port": 443,
                        "protocol": "HTTPS",
                        "tls": {"certificateRefs": [{"name": "shared-cert"}]},
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
        "NodePool": lambda _, name: None,
    }
    if any(item.kind == "PersistentVolumeClaim" for item in wanted):
        # A claim is only usable once bound: give each a volume of its own, bound up front (the
        # real PV controller completes the binding).
        factories["PersistentVolumeClaim"] = lambda ns, name: {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": f"{ns}-{name}",
                "resources": {"requests": {"storage": "10Gi"}},
            },
        }
    for item in wanted:
        if item.kind not in factories:
            pytest.fail(f"no test factory for presupposed kind {item.kind!r}")
        if item.kind == "NodePool":
            assert item.name in NODE_POOLS, f"no node pool {item.name!r} in NODE_POOLS"
            continue
        target = item.namespace or namespace
        _ensure_namespace(core, target)
        if item.kind == "PersistentVolumeClaim":
            _create(plane, _volume_for(target, item.name))
        manifest = factories[item.kind](target, item.name)
        assert manifest is not None
        _create(plane, manifest)


def _volume_for(namespace: str, claim: str) -> dict[str, Any]:
    """A PersistentVolume reserved for one claim (a local path: nothing mounts it here)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": f"/var/lib/test-volumes/{namespace}-{claim}"},
        },
    }


def helm_run(
    helm: Path, plane: ControlPlane, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` against the control plane; fails with helm's output when it fails."""
    result = subprocess.run(
        [str(helm), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=brief_go_environment(),
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def wait_flags(helm: Path) -> list[str]:
    """``--wait`` for both Helms: Helm 4 waits with kstatus (``watcher``) only when asked."""
    return ["--wait=watcher" if "v4" in helm.parent.name else "--wait", f"--timeout={HELM_TIMEOUT}"]


def install(
    helm: Path,
    plane: ControlPlane,
    namespace: str,
    *,
    release: str = "r",
    values_files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = ["install", release, str(CHART_DIR), "-n", namespace, *wait_flags(helm)]
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm_run(helm, plane, *args, check=check)


def release_objects(plane: ControlPlane, namespace: str, release: str) -> list[str]:
    """``kind/name`` of every object labelled with the release, in its namespace and
    cluster-wide, over every listable kind the server serves."""
    kinds = plane.run_kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    skip = {"events", "events.events.k8s.io", "componentstatuses"}
    wanted = ",".join(k for k in kinds if k not in skip)
    selector = f"app.kubernetes.io/instance={release}"
    found = plane.run_kubectl(
        "get", wanted, "-A", "-l", selector, "-o", "jsonpath={range .items[*]}"
        "{.kind}/{.metadata.namespace}/{.metadata.name}{'\\n'}{end}",
    ).stdout.split()  # fmt: skip
    return [f for f in found if f.split("/")[1] in ("", namespace)]
