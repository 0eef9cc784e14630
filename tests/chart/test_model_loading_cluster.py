"""The fast model loading values installed for real with `helm install` on the local Kubernetes
1.36 control plane (tests/kube), in a namespace where Pod Security "restricted" is enforced.

Cases, one per ci file (Cloud Storage FUSE volume with its sidecar annotations; the model cache
filled by an init container on a persistent volume; extra volumes, mounts and envFrom), each
installed by Helm 3 or Helm 4: the API server accepts every object and the Deployment's
controller gets its pod admitted, with the CSI volume, the init container and the extra
mounts it was rendered with; the same model cache with a container allowed to escalate
privileges gets no pod, and the ReplicaSet's events carry admission's PodSecurity refusal (the
check above can fail).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import CHART_DIR, HELM_BINARIES
from tests.kube.control_plane import ControlPlane

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
