"""A real node for the tests that run images for real: ``../shared/k8s/node.sh`` (kubelet,
containerd, kube-proxy v1.36.2) joined to a control plane of its own.

The node is one per machine, and its control plane is not the session's ``control_plane``:
there the kubelet stand-in plays the pods of its fake nodes, and a pod the scheduler put on one
of those would seem to run without running. What a GKE GPU node has and this machine lacks is
faked the way ``../shared/k8s/README.md`` says: the accelerator label, and a status patched
(again every few seconds, as the kubelet writes its own) with a GPU and the CPU and memory the
chart's Triton pod requests. The node carries no GPU taint: it is the cluster's only node, and
the deployer's Job must land on it too.

Cloud Storage is the GCS emulator (bench/gcs_emulator.py) on the node's address: pods read a
``gs://`` repository as on GKE, with no setting of their own, because a MutatingAdmissionPolicy
(Kubernetes' own CEL admission, no webhook) gives every container created on this cluster
``CLOUD_STORAGE_EMULATOR_ENDPOINT``, as GKE's metadata server and Workload Identity give
Triton's Cloud Storage client its way to the real one.

The node has no cluster DNS, and the chart's ``helm test`` pod calls Triton's Service by name.
A DNS stand-in answers for Services as CoreDNS does (``NAME.NAMESPACE.svc.cluster.local`` to
the ClusterIP): Debian's dnsmasq on the node's address, fed a hosts file of the cluster's
Services, and the kubelet points pods at it (``--cluster-dns``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from standins.kube.control_plane import K8S_DIR, ControlPlane, wait_until
from standins.kube.nodes import GKE_ACCELERATOR, GPU_RESOURCE

NODE_SH = K8S_DIR / "node.sh"
NODE_LOCK = Path("/run/ktnode.lock")
"""Where node.sh records the control plane its one node serves."""
NODE_ADDRESS = "10.99.0.1"
"""The node's own address (node.sh), where pods find the DNS stand-in."""
CLUSTER_DOMAIN = "cluster.local"
SAMPLE_REPOSITORY = "gs://triton-samples/bert"
"""Where the node's Cloud Storage holds the BERT sample's repository (tests/conftest.py)."""
STORAGE_ENDPOINT_ENV = "CLOUD_STORAGE_EMULATOR_ENDPOINT"
"""What points Triton's Cloud Storage client (google-cloud-cpp) at another endpoint."""
PATCH_EVERY_S = 3.0
UP_TIMEOUT_S = 600.0
"""node.sh's first start installs containerd and friends with apt-get."""


def missing_node_prerequisite() -> str | None:
    """Why a real node cannot start here, or None when it can."""
    if not NODE_SH.is_file():
        return f"{NODE_SH} is absent: the real node's binaries are not here"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, network namespaces, cgroups)"
    if shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists():
        return "dnsmasq is missing (the node's DNS stand-in): make debian-packages"
    if NODE_LOCK.is_file():
        owner = NODE_LOCK.read_text().strip()
        if owner and Path(owner, "node").is_dir():
            if not _alive(Path(owner, "node", "kubelet.pid")):
                return (
                    f"a real node left by an interrupted run is recorded for {owner} (its kubelet"
                    f" is gone): run `{NODE_SH} down {owner}` to undo it, then retry"
                )
            return f"a real node already runs on this machine (for {owner}): one per machine"
    return None


def _alive(pid_file: Path) -> bool:
    """Whether the process a pid file names still runs."""
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


@dataclass
class RealNode:
    """The running node."""

    plane: ControlPlane
    """Its control plane."""
    name: str
    """The Node's name (this machine's hostname)."""
    logs: Path
    """kubelet, containerd and kube-proxy logs."""


class _ServiceDNS:
    """dnsmasq answering ``NAME.NAMESPACE.svc.cluster.local`` with each Service's ClusterIP,
    from a hosts file rewritten whenever the Services change (dnsmasq rereads it)."""

    def __init__(self, plane: ControlPlane, workdir: Path) -> None:
        self._core: Any = client.CoreV1Api(plane.api_client())
        self._hosts = workdir / "dns-hosts"
        self._hosts.mkdir(parents=True, exist_ok=True)
        self._log = workdir / "dnsmasq.log"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._write()
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    dnsmasq,
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    f"--listen-address={NODE_ADDRESS}",
                    f"--hostsdir={self._hosts}",
                    f"--local=/{CLUSTER_DOMAIN}/",
                    "--log-facility=-",
                    "--pid-file=",
                    "--user=root",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._thread.join(timeout=10)

    def _write(self) -> None:
        services = self._core.list_service_for_all_namespaces().items
        lines = [
            f"{s.spec.cluster_ip} {s.metadata.name}.{s.metadata.namespace}.svc.{CLUSTER_DOMAIN}"
            for s in services
            if s.spec.cluster_ip and s.spec.cluster_ip != "None"
        ]
        text = "\n".join(sorted(lines)) + "\n"
        target = self._hosts / "services"
        if not target.exists() or target.read_text() != text:
            partial = self._hosts / ".services.partial"
            partial.write_text(text)
            partial.replace(target)

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):  # a slow API server: try again
                self._write()


class _GpuNodeStatus:
    """Keeps the node's status saying it has a GPU and the CPU and memory of a GPU node."""

    def __init__(self, plane: ControlPlane, name: str, capacity: dict[str, str]) -> None:
        self._core: Any = client.CoreV1Api(plane.api_client())
        self._name = name
        self._capacity = capacity
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> None:
        self._patch()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _patch(self) -> None:
        body = {"status": {"capacity": self._capacity, "allocatable": self._capacity}}
        self._core.patch_node_status(self._name, body)

    def _follow(self) -> None:
        while not self._stop.wait(PATCH_EVERY_S):
            with contextlib.suppress(Exception):
                self._patch()


def _node_sh(command: str, plane: ControlPlane, env: dict[str, str]) -> None:
    """``node.sh up|down DIR``; raises RuntimeError with its output when it fails."""
    done = subprocess.run(
        ["bash", str(NODE_SH), command, str(plane.workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"node.sh {command} failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def running_node(
    plane: ControlPlane,
    *,
    http_registries: Sequence[str] = (),
    accelerator: str = "nvidia-l4",
    capacity: dict[str, str] | None = None,
) -> Iterator[RealNode]:
    """The machine's real node, joined to ``plane``, labelled and sized as a GKE node with
    one GPU of ``accelerator``; it pulls from ``http_registries`` over plain HTTP. Everything
    it started is stopped when the block ends, however it ends (``node.sh down`` undoes its
    host changes)."""
    env = {
        **os.environ,
        "NODE_HTTP_REGISTRIES": " ".join(http_registries),
        "KUBELET_ARGS": f"--cluster-dns={NODE_ADDRESS} --cluster-domain={CLUSTER_DOMAIN}",
    }
    name = socket.gethostname()
    sized = {"cpu": "16", "memory": "64Gi", "pods": "50", GPU_RESOURCE: "1", **(capacity or {})}
    dns = _ServiceDNS(plane, plane.workdir / "node-dns")
    status = _GpuNodeStatus(plane, name, sized)
    try:
        _node_sh("up", plane, env)
        plane.run_kubectl("label", "node", name, f"{GKE_ACCELERATOR}={accelerator}", "--overwrite")
        status.start()
        dns.start()
        yield RealNode(plane=plane, name=name, logs=plane.workdir / "node" / "logs")
    finally:
        dns.stop()
        status.stop()
        _node_sh("down", plane, env)


def _storage_policy(endpoint: str) -> list[dict[str, Any]]:
    name = "cloud-storage-endpoint"
    env = f'Object.spec.containers.env{{name: "{STORAGE_ENDPOINT_ENV}", value: "{endpoint}"}}'
    each = f"Object.spec.containers{{name: c.name, env: [{env}]}}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {
                            "expression": "Object{spec: Object.spec{containers: "
                            f"object.spec.containers.map(c, {each})}}}}"
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name},
        },
    ]


@contextlib.contextmanager
def pods_reach_storage(plane: ControlPlane, endpoint: str) -> Iterator[None]:
    """Every container created on ``plane`` while the block runs gets
    ``CLOUD_STORAGE_EMULATOR_ENDPOINT=endpoint`` (a MutatingAdmissionPolicy); returns once
    the API server applies it (a server-side dry run shows the variable), removes it after."""
    manifests = _storage_policy(endpoint)
    plane.run_kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": manifests}),
    )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "storage-probe", "namespace": "default"},
        "spec": {"containers": [{"name": "probe", "image": "localhost/pause:3.10"}]},
    }

    def applied() -> bool:
        shown = plane.run_kubectl(
            "create", "--dry-run=server", "-o=json", "-f", "-", stdin=json.dumps(probe)
        )
        (container,) = json.loads(shown.stdout)["spec"]["containers"]
        return {"name": STORAGE_ENDPOINT_ENV, "value": endpoint} in container.get("env", [])

    try:
        wait_until("the storage endpoint policy applies to new pods", applied, timeout_s=30)
        yield
    finally:
        for manifest in reversed(manifests):
            with contextlib.suppress(AssertionError):
                plane.run_kubectl("delete", manifest["kind"], manifest["metadata"]["name"])
