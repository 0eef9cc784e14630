"""The fast model loading values installed for real with `helm install` on the local Kubernetes
1.36 control plane (standins/kube), in a namespace where Pod Security "restricted" is enforced.

Cases, one per ci file (Cloud Storage FUSE volume with its sidecar annotations; the model cache
filled by an init container on a persistent volume; extra volumes, mounts and envFrom), each
installed by Helm 3 or Helm 4: the API server accepts every object and the Deployment's
controller gets its pod admitted, with the CSI volume, the init container and the extra
mounts it was rendered with; the same model cache with a container allowed to escalate
privileges gets no pod, and the ReplicaSet's events carry admission's PodSecurity refusal (the
check above can fail).

And the FUSE default on the README's cluster: the README's GPU pool command, read from the
README (machine type, accelerator and count, Local SSD ephemeral storage), becomes nodes
labelled as GKE labels such a pool; `helm install` with `modelLoading.gcsFuse.enabled=true`
and warm standby, every other value left at its default (the file cache on Local SSD), is
scheduled by the real scheduler: Triton and its placeholder each land on a node of that pool,
none on a larger L4 node without Local SSD next to it, which the scheduler would otherwise
prefer (the least allocated).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from standins.kube.control_plane import ControlPlane
from standins.kube.kubelet import KubeletStandIn
from tests.chart.cluster import install as helm_install
from tests.conftest import CHART_DIR, HELM_BINARIES, ROOT

pytestmark = pytest.mark.slow

HELM3, HELM4 = (HELM_BINARIES[name][1] for name in ("helm3", "helm4"))
CI = CHART_DIR / "ci"


class NotAdmittedError(AssertionError):
    """No pod appeared; the message carries the ReplicaSet's FailedCreate events."""


def admitted_pods(plane: ControlPlane, namespace: str, timeout_s: float = 60) -> list[Any]:
    """The release's Triton pods once the ReplicaSet has created one; NotAdmittedError with
    the FailedCreate events (what admission said) if none appears in time."""
    core: Any = client.CoreV1Api(plane.api_client())
    selector = "app.kubernetes.io/name=triton-inference-server"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if pods:
            return list(pods)
        time.sleep(0.5)
    events = core.list_namespaced_event(namespace).items
    messages = [e.message for e in events if e.reason == "FailedCreate"]
    raise NotAdmittedError(f"no pod admitted in {timeout_s:.0f} s; FailedCreate: {messages}")


def install(plane: ControlPlane, helm: Path, namespace: str, *arguments: str) -> None:
    command = [str(helm), "install", "fast", str(CHART_DIR), "-n", namespace]
    command += ["--kubeconfig", str(plane.kubeconfig), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("values_file", "helm"),
    [
        (CI / "15-gcs-fuse-values.yaml", HELM4),
        (CI / "16-model-cache-values.yaml", HELM3),
        (CI / "17-extra-volumes-values.yaml", HELM4),
    ],
    ids=["gcs-fuse", "model-cache", "extra-volumes"],
)
def test_the_pod_is_admitted_in_a_restricted_namespace(
    control_plane: ControlPlane, k8s_namespace: str, values_file: Path, helm: Path
) -> None:
    install(control_plane, helm, k8s_namespace, "-f", str(values_file))
    (pod,) = admitted_pods(control_plane, k8s_namespace)
    spec = pod.spec
    volumes = {v.name: v for v in spec.volumes}
    triton = next(c for c in spec.containers if c.name == "triton")
    mounts = {m.name: m.mount_path for m in triton.volume_mounts}
    if values_file.name.startswith("15-"):
        assert pod.metadata.annotations["gke-gcsfuse/volumes"] == "true"
        assert volumes["model-repository"].csi.driver == "gcsfuse.csi.storage.gke.io"
        assert volumes["gke-gcsfuse-cache"].empty_dir.medium == "Memory"
        assert mounts["model-repository"] == "/mnt/models"
    elif values_file.name.startswith("16-"):
        (init,) = spec.init_containers
        assert init.name == "model-cache"
        assert init.security_context.allow_privilege_escalation is False
        assert volumes["model-cache"].persistent_volume_claim.claim_name == "triton-model-cache"
        assert mounts["model-cache"] == "/model-cache"
    else:
        assert triton.env_from[0].secret_ref.name == "s3-credentials"
        assert volumes["ca-bundle"].config_map.name == "s3-ca-bundle"
        assert mounts["ca-bundle"] == "/etc/ssl/s3"


def test_a_pod_that_breaks_restricted_is_refused(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    values = str(CI / "16-model-cache-values.yaml")
    escalate = "securityContext.allowPrivilegeEscalation=true"
    install(control_plane, HELM4, k8s_namespace, "-f", values, "--set", escalate)
    with pytest.raises(NotAdmittedError, match="violates PodSecurity"):
        admitted_pods(control_plane, k8s_namespace, timeout_s=20)


LOCAL_SSD_LABEL = "cloud.google.com/gke-ephemeral-storage-local-ssd"
"""The label GKE puts on the nodes of a pool created with --ephemeral-storage-local-ssd."""
ALLOCATABLE = {"g2-standard-8": ("7910m", "27046Mi")}
"""What GKE leaves pods of a machine type (8 vCPU, 32 GB) after its system reservations."""


@dataclass(frozen=True)
class ReadmePool:
    """The GPU node pool the README creates, as its command says."""

    name: str
    machine_type: str
    accelerator: str
    gpus: int
    local_ssd: bool


def readme_gpu_pool() -> ReadmePool:
    """The `gcloud container node-pools create` command of the README's install steps."""
    text = (ROOT / "README.md").read_text()
    command = re.search(r"gcloud container node-pools create (?:[^\n]*\\\n)*[^\n]*", text)
    assert command, "the README creates no node pool"
    words = shlex.split(command.group(0).replace("\\\n", " "))
    options = {w.split("=", 1)[0]: w for w in words}

    def value(flag: str) -> str:
        return words[words.index(flag) + 1]

    accelerator = dict(part.split("=", 1) for part in value("--accelerator").split(","))
    return ReadmePool(
        name=words[4],
        machine_type=value("--machine-type"),
        accelerator=accelerator["type"],
        gpus=int(accelerator.get("count", "1")),
        local_ssd="--ephemeral-storage-local-ssd" in options,
    )


@pytest.fixture
def readme_pool(kubelet: KubeletStandIn, k8s_namespace: str) -> Iterator[list[str]]:
    """Two nodes of the README's GPU pool, and beside them a larger node of the same GPU
    without Local SSD (a pool the README does not create); removed afterwards."""
    pool = readme_gpu_pool()
    cpu, memory = ALLOCATABLE[pool.machine_type]
    labels = {LOCAL_SSD_LABEL: "true"} if pool.local_ssd else {}
    names = [f"readme-{k8s_namespace}-{i}" for i in range(2)]
    decoy = f"no-ssd-{k8s_namespace}"
    for name in names:
        kubelet.add_node(
            name,
            accelerator=pool.accelerator,
            gpus=pool.gpus,
            pool=pool.name,
            labels=labels,
            cpu=cpu,
            memory=memory,
        )
    kubelet.add_node(
        decoy, accelerator=pool.accelerator, gpus=8, pool="other", cpu="96", memory="360Gi"
    )
    try:
        yield names
    finally:
        for name in [*names, decoy]:
            kubelet.remove_node(name)


def test_the_fuse_default_and_its_placeholders_run_on_the_readmes_pool(
    control_plane: ControlPlane, k8s_namespace: str, readme_pool: list[str]
) -> None:
    helm_install(
        HELM4,
        control_plane,
        k8s_namespace,
        release="fuse",
        sets=[
            "modelRepository=gs://bucket/models",
            "modelLoading.gcsFuse.enabled=true",
            "standby.enabled=true",
        ],
    )
    core: Any = client.CoreV1Api(control_plane.api_client())
    pods = core.list_namespaced_pod(k8s_namespace).items
    placed = {pod.metadata.labels["app.kubernetes.io/name"]: pod.spec.node_name for pod in pods}
    assert placed.keys() == {"triton-inference-server", "triton-inference-server-standby"}
    assert set(placed.values()) == set(readme_pool), placed
    for pod in pods:
        assert pod.spec.node_selector[LOCAL_SSD_LABEL] == "true"
