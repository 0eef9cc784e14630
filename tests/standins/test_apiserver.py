"""The API emulator behaves like a real API server where the deployer relies on it, as seen
through the real ``kubernetes`` client: the cases marked (both) run against the emulator and
against the real control plane (standins/kube), so the emulator's fault tests stand on the real
server's behaviour.

Cases:
- (both) server-side apply creates a missing object; an identical apply changes nothing
  (same resourceVersion); a label change bumps the resourceVersion; fields an apply leaves
  out are given up; only a spec change bumps a Deployment's generation;
- apply without a field manager is refused (422), as a real server does;
- (both) a field set by a merge patch survives an apply that leaves it out;
- (both) the status subresource changes only status; status sent with an apply is ignored;
- (both) create answers 201 and a second create 409; get of a missing object 404;
- (both) lists honour equality label selectors;
- controllers run after writes; injected failures answer a Status; pod logs are text;
- discovery serves the Application CRD and the shared CRDs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.cluster import Cluster
from deployer.objects import ObjectRef
from standins.emulator.cluster import EmulatedCluster
from standins.emulator.controllers import deployment_rolls_out
from tests.conftest import require_crds

CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "labels": {"tier": "a"}},
    "data": {"k": "v"},
}
REF = ObjectRef("v1", "ConfigMap", "c", "triton")
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "labels": {"tier": "a"}},
    "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {
            "metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]},
        },
    },
}


@pytest.fixture(params=["emulator", "real"])
def server(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The deployer's cluster module on the emulator, then on the real control plane (admin,
    in a namespace of its own)."""
    if request.param == "emulator":
        yield request.getfixturevalue("cluster")
        return
    plane = request.getfixturevalue("control_plane")
    namespace = request.getfixturevalue("k8s_namespace")
    with Cluster(plane.api_client(), namespace=namespace) as real:
        yield real


def test_apply_changes_only_what_changed(server: Cluster) -> None:
    created = server.apply(CONFIGMAP)
    meta = created["metadata"]
    assert meta["uid"] and meta["namespace"] == server.namespace
    same = server.apply(CONFIGMAP)
    assert same["metadata"]["resourceVersion"] == meta["resourceVersion"]
    relabelled = server.apply({**CONFIGMAP, "metadata": {"name": "c", "labels": {"tier": "b"}}})
    assert relabelled["metadata"]["resourceVersion"] != meta["resourceVersion"]
    assert relabelled["metadata"]["uid"] == meta["uid"]
    # Fields the apply leaves out are given up: the label it no longer sets is gone.
    changed = server.apply({**CONFIGMAP, "metadata": {"name": "c"}, "data": {"k": "w"}})
    assert changed["data"] == {"k": "w"}
    assert not changed["metadata"].get("labels")


def test_only_a_spec_change_bumps_the_generation(server: Cluster) -> None:
    """What readiness reads (observedGeneration against generation) moves only with the
    spec (a Deployment: the real controller writes its status meanwhile)."""
    created = server.apply(DEPLOYMENT)
    assert created["metadata"]["generation"] == 1
    relabelled = server.apply({**DEPLOYMENT, "metadata": {"name": "d", "labels": {"tier": "b"}}})
    assert relabelled["metadata"]["generation"] == 1
    spec = {**DEPLOYMENT["spec"], "minReadySeconds": 5}
    changed = server.apply({**DEPLOYMENT, "spec": spec})
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["uid"] == created["metadata"]["uid"]


def test_apply_needs_a_field_manager(emulator: EmulatedCluster, cluster: Cluster) -> None:
    response = cluster.api_client.call_api(
        "PATCH",
        f"{emulator.url}/api/v1/namespaces/triton/configmaps/c",
        header_params={"Content-Type": "application/apply-patch+yaml"},
        body=CONFIGMAP,
    )
    response.read()  # type: ignore[no-untyped-call]
    assert response.status == 422
    assert cluster.get(REF) is None, "nothing was created"


def test_merge_patched_fields_survive_an_apply(server: Cluster) -> None:
    server.apply(CONFIGMAP)
    ref = ObjectRef("v1", "ConfigMap", "c", server.namespace)
    server.merge_patch(ref, {"data": {"phase": "Success"}})
    again = server.apply(CONFIGMAP)
    assert again["data"] == {"k": "v", "phase": "Success"}


def test_status_goes_through_its_subresource(server: Cluster) -> None:
    app = {
        "apiVersion": "app.k8s.io/v1beta1",
        "kind": "Application",
        "metadata": {"name": "a"},
        "spec": {"descriptor": {"type": "x"}},
        "status": {"observedGeneration": 7},
    }
    live = server.apply(app)
    assert "status" not in live
    ref = ObjectRef("app.k8s.io/v1beta1", "Application", "a", server.namespace)
    patched = server.merge_patch(
        ref,
        {"status": {"componentsReady": "1/1"}, "spec": {"assemblyPhase": "Failed"}},
        subresource="status",
    )
    assert patched["status"] == {"componentsReady": "1/1"}
    assert "assemblyPhase" not in patched["spec"]
    assert patched["metadata"]["generation"] == 1


def test_create_get_and_conflicts(server: Cluster) -> None:
    core = client.CoreV1Api(server.api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="created"), data={})
    _, status, _ = core.create_namespaced_config_map_with_http_info(server.namespace, body)
    assert status == 201
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(server.namespace, body)
    assert caught.value.status == 409
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", server.namespace)
    assert missing.value.status == 404


def test_lists_honour_label_selectors(server: Cluster) -> None:
    server.apply(CONFIGMAP)
    server.apply({**CONFIGMAP, "metadata": {"name": "d", "labels": {"tier": "b"}}})
    listed = [o["metadata"]["name"] for o in server.list_objects("v1", "ConfigMap")]
    assert {"c", "d"} <= set(listed)
    picked = server.list_objects("v1", "ConfigMap", label_selector="tier=b")
    assert [o["metadata"]["name"] for o in picked] == ["d"]


def test_controllers_failures_and_logs(emulator: EmulatedCluster, cluster: Cluster) -> None:
    emulator.set_controllers({"Deployment": deployment_rolls_out})
    live = cluster.apply(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}
    )
    assert live["status"]["availableReplicas"] == 1
    emulator.fail("ConfigMap", "c", status=403, message="forbidden by policy")
    with pytest.raises(ApiException) as caught:
        cluster.apply(CONFIGMAP)
    assert caught.value.status == 403
    assert "forbidden by policy" in str(caught.value.body)
    emulator.set_pod_log("p", "line one\n")
    assert cluster.pod_log("p") == "line one\n"


def test_discovery_serves_the_crds(cluster: Cluster) -> None:
    require_crds()
    assert cluster.is_namespaced("app.k8s.io/v1beta1", "Application")
    assert cluster.is_namespaced("networking.istio.io/v1", "VirtualService")
    assert not cluster.is_namespaced("scheduling.k8s.io/v1", "PriorityClass")
