"""A Marketplace deploy of this release's deployer over the previous release's, on the real
control plane, each as its own ServiceAccount, as Marketplace runs them.

The previous release is the upgrade tests' baseline (``tests/chart/fixtures/baseline.yaml``):
its deployer image's payload (its deployer package and schema.yaml) and its chart, run as its
image would run them, from their own files, in a process of their own.

Cases:
- mpdev's install steps with the previous release's schema and deployer image, its deployer
  run as ``/bin/deploy.sh``: exit 0, the Application Success, Triton running the image
  Marketplace republished at that version;
- the same steps again with this release's schema and deployer image, this release's deployer
  run over it: exit 0, the Application Success, the same Application (uid) now at this
  version; every object the first deploy applied kept in place (same uid, never deleted and
  created again) or a change baseline.yaml documents; every Secret, the restricted-API key
  among them, kept with its data; selectors and Service ports unchanged; Triton rolled to the
  image republished at this version; the second deployer's ServiceAccount removed too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from deployer import application
from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from tests import baseline
from tests.baseline import Snapshot, compare
from tests.deployer.conftest import PUBLISHED_VERSION
from tests.deployer.mpdev import (
    REPUBLISHED,
    Installed,
    Ran,
    get_object,
    mpdev_install,
    run_deployer,
    shim_arguments,
)

pytestmark = pytest.mark.slow

NAME = "tri"
TRITON = f"{NAME}-triton-inference-server"
MARKETPLACE_LABEL = "marketplace.cloud.google.com/deployer"
"""Marks what Marketplace provisions for a deploy (provision.py), not what the deployer applies."""


@pytest.fixture
def gpu_node(kubelet: KubeletStandIn, k8s_namespace: str) -> Iterator[str]:
    """L4 GPUs of this test's own: the first deploy's pod and the rolling update's."""
    name = f"l4-{k8s_namespace}"
    kubelet.add_node(name, accelerator="nvidia-l4", gpus=2, cpu="16", memory="64Gi")
    try:
        yield name
    finally:
        kubelet.remove_node(name)


@pytest.fixture(scope="module")
def previous_deployer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's deployer image, laid out as the repository lays it out."""
    return baseline.extract_deployer(tmp_path_factory.mktemp("previous-deployer"))


def run_previous_deployer(installed: Installed, image: Path, helm: Path) -> Ran:
    """The previous deployer as its image's ``/bin/deploy.sh`` runs it, from its own files
    (first on the import path) with its schema and chart, as the deployer's ServiceAccount."""
    done = subprocess.run(
        [
            sys.executable, "-m", "deployer",
            *shim_arguments("/bin/deploy.sh", image / "deployer" / "marketplace"),
            "--values", str(installed.values_file),
            "--schema", str(image / "schema.yaml"),
            "--chart", str(image / "chart"),
            "--kubeconfig", str(installed.kubeconfig),
            "--poll-interval", "0.2", "--timeout", "120",
        ],
        cwd=image,
        env={**os.environ, "PYTHONPATH": str(image), "HELM": str(helm)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return Ran(code=done.returncode, out=done.stdout, err=done.stderr)


def owned_objects(plane: ControlPlane, namespace: str, app_uid: str) -> Snapshot:
    """What the deployer applied in ``namespace``: the Application and the objects it owns,
    but Marketplace's own (the deployer's values Secret, Role and RoleBinding, which each
    deploy provisions anew)."""
    kinds = plane.run_kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name")
    skip = {"events", "events.events.k8s.io", "pods", "replicasets.apps"}
    wanted = ",".join(k for k in kinds.stdout.split() if k not in skip)
    listed = plane.run_kubectl("get", wanted, "-n", namespace, "-o", "json")
    items = [
        o
        for o in json.loads(listed.stdout)["items"]
        if MARKETPLACE_LABEL not in (o["metadata"].get("labels") or {})
        and (
            o["metadata"].get("uid") == app_uid
            or any(r.get("uid") == app_uid for r in o["metadata"].get("ownerReferences", []))
        )
    ]
    return baseline.snapshot(items)


def triton_images(plane: ControlPlane, namespace: str) -> set[str]:
    apps: Any = client.AppsV1Api(plane.api_client())
    deployment = apps.read_namespaced_deployment(TRITON, namespace)
    return {c.image for c in deployment.spec.template.spec.containers}


@pytest.mark.usefixtures("gpu_node")
def test_a_deploy_of_this_release_over_the_previous_one(
    control_plane: ControlPlane,
    k8s_namespace: str,
    previous_deployer: Path,
    helm4: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = {"name": NAME, "namespace": k8s_namespace, "modelRepository": "gs://bucket/models"}
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
    first = mpdev_install(
        control_plane,
        form,
        entrypoint="/bin/deploy.sh",
        workdir=(tmp_path / "first").resolve(),
        schema_file=previous_deployer / "schema.yaml",
        deployer_image=f"{REPUBLISHED}/deployer:{baseline.VERSION}",
    )
    ran = run_previous_deployer(first, previous_deployer, helm4)
    assert ran.code == 0, ran.out + ran.err
    app = get_object(control_plane, application.API_VERSION, "Application", NAME, k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    assert triton_images(control_plane, k8s_namespace) == {f"{REPUBLISHED}:{baseline.VERSION}"}
    before = owned_objects(control_plane, k8s_namespace, app["metadata"]["uid"])
    assert {
        f"Application/{NAME}", f"Deployment/{TRITON}", f"Service/{TRITON}",
        f"Secret/{TRITON}-admin-key", f"ServiceAccount/{TRITON}",
    } <= set(before.objects), sorted(before.objects)  # fmt: skip

    monkeypatch.setenv("HELM", str(helm4))
    second = mpdev_install(
        control_plane,
        form,
        entrypoint="/bin/deploy.sh",
        workdir=(tmp_path / "second").resolve(),
    )
    assert second.application_uid == first.application_uid
    ran = run_deployer(second, "/bin/deploy.sh", capsys)
    assert ran.code == 0, ran.out + ran.err
    assert f"removed the deployer's ServiceAccount/{second.service_account}" in ran.out

    app = get_object(control_plane, application.API_VERSION, "Application", NAME, k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    assert app["spec"]["descriptor"]["version"] == PUBLISHED_VERSION
    after = owned_objects(control_plane, k8s_namespace, app["metadata"]["uid"])
    assert compare(before, after, ci_file="marketplace", fullname=TRITON) == []
    assert triton_images(control_plane, k8s_namespace) == {f"{REPUBLISHED}:{PUBLISHED_VERSION}"}
    apps: Any = client.AppsV1Api(control_plane.api_client())
    wait_until(
        "Triton rolled to this release's image",
        lambda: (
            (d := apps.read_namespaced_deployment(TRITON, k8s_namespace).status).ready_replicas
            == d.updated_replicas
            == 1
        ),
        timeout_s=60,
    )
