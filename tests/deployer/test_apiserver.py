"""The API emulator behaves like a real API server where the deployer relies on it, as seen
through the real ``kubernetes`` client.

Cases:
- server-side apply creates a missing object (201) with uid, resourceVersion, generation 1;
- an identical apply changes nothing (same resourceVersion); a label change bumps the
  resourceVersion but not the generation; a spec change bumps both;
- apply without a field manager is refused (422), as a real server does;
- a field set by a merge patch survives an apply that leaves it out;
- the status subresource changes only status; status sent with an apply is ignored;
- create answers 201 and a second create 409; get of a missing object 404;
- lists honour equality label selectors and carry kind and apiVersion;
- controllers run after writes; injected failures answer a Status; pod logs are text;
- discovery serves the Application CRD and the shared CRDs.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.cluster import Cluster
from deployer.objects import ObjectRef
from tests.conftest import require_crds
from tests.deployer.apiserver import EmulatedCluster, deployment_rolls_out

CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "labels": {"tier": "a"}},
    "data": {"k": "v"},
}
REF = ObjectRef("v1", "ConfigMap", "c", "triton")


def test_apply_creates_then_changes_only_what_changed(cluster: Cluster) -> None:
    created = cluster.apply(CONFIGMAP)
    meta = created["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["namespace"] == "triton"
    same = cluster.apply(CONFIGMAP)
    assert same["metadata"]["resourceVersion"] == meta["resourceVersion"]
    relabelled = cluster.apply({**CONFIGMAP, "metadata": {"name": "c", "labels": {"tier": "b"}}})
    assert relabelled["metadata"]["resourceVersion"] != meta["resourceVersion"]
    assert relabelled["metadata"]["generation"] == 1
    changed = cluster.apply({**CONFIGMAP, "data": {"k": "w"}})
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["uid"] == meta["uid"]
    assert changed["metadata"]["labels"] == {"tier": "a"}


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


def test_merge_patched_fields_survive_an_apply(cluster: Cluster) -> None:
    cluster.apply(CONFIGMAP)
    cluster.merge_patch(REF, {"data": {"phase": "Success"}})
    again = cluster.apply(CONFIGMAP)
    assert again["data"] == {"k": "v", "phase": "Success"}


def test_status_goes_through_its_subresource(cluster: Cluster) -> None:
    app = {
        "apiVersion": "app.k8s.io/v1beta1",
        "kind": "Application",
        "metadata": {"name": "a"},
        "spec": {"descriptor": {"type": "x"}},
        "status": {"ignored": True},
    }
    live = cluster.apply(app)
    assert "status" not in live
    ref = ObjectRef("app.k8s.io/v1beta1", "Application", "a", "triton")
    patched = cluster.merge_patch(
        ref, {"status": {"ok": 1}, "spec": {"x": 1}}, subresource="status"
    )
    assert patched["status"] == {"ok": 1}
    assert "x" not in patched["spec"]
    assert patched["metadata"]["generation"] == 1


def test_create_get_and_conflicts(emulator: EmulatedCluster, cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="created"), data={})
    _, status, _ = core.create_namespaced_config_map_with_http_info("triton", body)
    assert status == 201
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("triton", body)
    assert caught.value.status == 409
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", "triton")
    assert missing.value.status == 404


def test_lists_honour_label_selectors(cluster: Cluster) -> None:
    cluster.apply(CONFIGMAP)
    cluster.apply({**CONFIGMAP, "metadata": {"name": "d", "labels": {"tier": "b"}}})
    assert [o["metadata"]["name"] for o in cluster.list_objects("v1", "ConfigMap")] == ["c", "d"]
    picked = cluster.list_objects("v1", "ConfigMap", label_selector="tier=b")
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
