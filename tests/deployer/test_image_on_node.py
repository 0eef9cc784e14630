"""The deployer image as GKE Marketplace runs it, on a real node.

``mpdev install`` and ``mpdev verify`` up to the deployer Job with Google's own code
(tests/deployer/mpdev.py: the placeholder Application, ``provision.py``'s manifests through
``set_app_labels.py`` and ``set_ownership.py``), the Job included: the node's kubelet PULLS the
deployer image ``make push`` published to the loopback registry (``localhost/...``, plain HTTP)
and runs it with the entrypoint Marketplace gives it, and the deployer applies the chart from
inside the pod through the ``kubernetes`` Service. Triton and the tester are the images
``make push`` republished, pulled the same way: here the real node's Triton 2.51 built for CPU
nodes (behind a launcher that drops the one flag the chart renders for its newer default
release, tests/deployer/images.py) and its curl image (tests/kube/node_images.py). Triton loads
the BERT sample from the node's Cloud Storage (``gs://``, the GCS emulator its pods reach). The
node is sized as a GKE L4 node (tests/conftest.py).

Cases:
- no entrypoint (as the Marketplace UI deploys: the image's own, ``/bin/deploy.sh``): the Job
  succeeds, the Application goes Pending then Success, Triton runs the republished image (the
  digest ``make push`` reported) with the form's model repository, loaded it and is Ready, and
  answers the sample's requests through its Service with the network's logits; the deployer's
  ServiceAccount is gone, and deleting the Application, as mpdev does, removes everything;
- ``/bin/deploy_with_tests.sh`` (``mpdev verify``): the test schema's model repository (the
  image built with ``VERIFY_MODEL_REPOSITORY``, the sample), the tester pod runs the
  republished tester image, reaches the real Triton's Service by name and succeeds, the Job's
  log reports it with ``SMOKE_TEST``; the Application Success, the ServiceAccount gone;
- a deploy that fails (values the schema refuses, the image's entrypoint): the Job fails, the
  Application is Failed with the reason, nothing else is applied, the ServiceAccount is kept.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client

from deployer import application
from samples.bert import client as bert
from samples.bert import contract
from scripts.image import DEPLOYER
from standins.kube.control_plane import ControlPlane, wait_until
from tests.conftest import NodeSample
from tests.deployer.conftest import DeployerImage
from tests.deployer.images import REGISTRY_HOST
from tests.deployer.mpdev import (
    Installed,
    PhaseWatch,
    get_object,
    mpdev_deletes_the_application,
    mpdev_install,
)
from tests.kube.node import RealNode
from tests.samples.helpers import expected_logits, served_logits

JOB_TIMEOUT_S = 300.0
"""Pulling the deployer and Triton, a deploy, Triton's model load and first probes."""
_numbers = itertools.count(1)


@pytest.fixture
def namespace(real_node: RealNode) -> Iterator[str]:
    """A namespace as Marketplace deploys into: no Pod Security labels (provision.py's Job
    sets no securityContext), deleted afterwards."""
    name = f"mp{next(_numbers)}"
    core: Any = client.CoreV1Api(real_node.plane.api_client())
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)


def _install(
    real_node: RealNode,
    deployer_image: DeployerImage,
    form: dict[str, Any],
    *,
    entrypoint: str | None,
    workdir: Path,
) -> Installed:
    return mpdev_install(
        real_node.plane,
        form,
        entrypoint=entrypoint,
        workdir=workdir,
        deployer_image=deployer_image.listing.references(REGISTRY_HOST, DEPLOYER)[0],
        with_job=True,
    )


def _finished_job(plane: ControlPlane, installed: Installed) -> tuple[bool, str, Any]:
    """Wait for the deployer Job (``backoffLimit: 0``) to succeed or fail; its verdict, its
    pod's log and the pod."""
    batch: Any = client.BatchV1Api(plane.api_client())
    job_name = f"{installed.name}-deployer"

    def finished() -> Any:
        status = batch.read_namespaced_job(job_name, installed.namespace).status
        return status if (status.succeeded or status.failed) else None

    status = wait_until(f"Job/{job_name} finished", finished, JOB_TIMEOUT_S)
    log = plane.run_kubectl("logs", f"job/{job_name}", f"--namespace={installed.namespace}")
    core: Any = client.CoreV1Api(plane.api_client())
    (pod,) = core.list_namespaced_pod(
        installed.namespace, label_selector=f"job-name={job_name}"
    ).items
    return bool(status.succeeded), log.stdout, pod


def _pulled(pod: Any, container: str) -> str:
    """The digest the node pulled a container's image at (``imageID``)."""
    (status,) = [s for s in pod.status.container_statuses if s.name == container]
    return str(status.image_id).rpartition("@")[2]


def test_the_image_default_deploys(
    real_node: RealNode,
    deployer_image: DeployerImage,
    published_images: dict[str, str],
    node_sample: NodeSample,
    namespace: str,
    tmp_path: Path,
) -> None:
    plane = real_node.plane
    form = {"name": "tri", "namespace": namespace, "modelRepository": node_sample.repository}
    # Watched from before the install: the Job starts at once, and may finish early.
    with PhaseWatch(plane, "tri", namespace) as phases:
        installed = _install(real_node, deployer_image, form, entrypoint=None, workdir=tmp_path)
        succeeded, log, pod = _finished_job(plane, installed)
    assert succeeded, log
    deployer_ref = deployer_image.listing.references(REGISTRY_HOST, DEPLOYER)[0]
    (container,) = pod.spec.containers
    assert container.command is None, "no entrypoint given: the image's own runs"
    assert _pulled(pod, "deployer") == published_images[deployer_ref]
    assert f"removed the deployer's ServiceAccount/{installed.service_account}" in log

    app = get_object(plane, application.API_VERSION, "Application", "tri", namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    assert phases.seen() == ["Pending", "Success"]
    assert app["metadata"]["uid"] == installed.application_uid
    assert get_object(plane, "v1", "ServiceAccount", installed.service_account, namespace) is None

    core: Any = client.CoreV1Api(plane.api_client())
    (triton,) = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/instance=tri"
    ).items
    triton_ref = deployer_image.listing.references(REGISTRY_HOST, "")[0]
    assert triton.spec.containers[0].image == triton_ref
    assert _pulled(triton, "triton") == published_images[triton_ref]
    assert triton.spec.node_name == real_node.name
    assert all(s.ready for s in triton.status.container_statuses)
    assert f"--model-repository={node_sample.repository}" in triton.spec.containers[0].args
    served = plane.run_kubectl("logs", triton.metadata.name, f"--namespace={namespace}").stdout
    assert "successfully loaded 'bert'" in served, served
    assert "launcher: dropped --http-max-input-size" in served, served
    service = core.read_namespaced_service("tri-triton-inference-server", namespace)
    (batch,) = bert.make_batches(count=1, batch_size=4, seq_len=contract.SEQUENCE_LENGTH, seed=5)
    np.testing.assert_allclose(
        served_logits(f"http://{service.spec.cluster_ip}:8000", batch),
        expected_logits(node_sample.network, dict(batch.named())),
        rtol=1e-4,
        atol=1e-4,
    )
    mpdev_deletes_the_application(plane, installed)


def test_verify_runs_the_testers(
    real_node: RealNode,
    deployer_image: DeployerImage,
    published_images: dict[str, str],
    node_sample: NodeSample,
    namespace: str,
    tmp_path: Path,
) -> None:
    plane = real_node.plane
    form = {"name": namespace, "namespace": namespace}
    installed = _install(
        real_node, deployer_image, form, entrypoint="/bin/deploy_with_tests.sh", workdir=tmp_path
    )
    succeeded, log, pod = _finished_job(plane, installed)
    assert succeeded, log
    assert pod.spec.containers[0].command == ["/bin/deploy_with_tests.sh"]
    tester = f"{namespace}-triton-inference-server-test-ready"
    assert f"SMOKE_TEST INFO Tester 'Pod/{tester}' succeeded." in log, log
    tester_pod = get_object(plane, "v1", "Pod", tester, namespace)
    assert tester_pod["status"]["phase"] == "Succeeded"
    tester_ref = deployer_image.listing.references(REGISTRY_HOST, "tester")[0]
    assert tester_pod["spec"]["containers"][0]["image"] == tester_ref
    app = get_object(plane, application.API_VERSION, "Application", namespace, namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    deployment = get_object(
        plane, "apps/v1", "Deployment", f"{namespace}-triton-inference-server", namespace
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--model-repository={node_sample.repository}" in args
    assert get_object(plane, "v1", "ServiceAccount", installed.service_account, namespace) is None
    mpdev_deletes_the_application(plane, installed)


def test_a_failed_deploy_marks_the_application_failed(
    real_node: RealNode,
    deployer_image: DeployerImage,
    published_images: dict[str, str],
    namespace: str,
    tmp_path: Path,
) -> None:
    plane = real_node.plane
    form = {"name": "tri", "namespace": namespace, "modelRepository": "s3://elsewhere/models"}
    installed = _install(real_node, deployer_image, form, entrypoint=None, workdir=tmp_path)
    succeeded, log, _ = _finished_job(plane, installed)
    assert not succeeded
    assert "Application/tri: phase Failed" in log, log
    app = get_object(plane, application.API_VERSION, "Application", "tri", namespace)
    assert app["spec"]["assemblyPhase"] == "Failed"
    (condition,) = app["status"]["conditions"]
    assert condition["reason"] == "BadInput"
    assert (
        "modelRepository (Model repository): 's3://elsewhere/models' does not match"
        in (condition["message"])
    )
    left = plane.run_kubectl("get", "deployments,services", f"--namespace={namespace}", "-o=name")
    assert left.stdout.split() == [], "nothing but the Application's phase was sent"
    assert get_object(plane, "v1", "ServiceAccount", installed.service_account, namespace)
