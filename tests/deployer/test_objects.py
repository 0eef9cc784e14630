"""Pure transformations of rendered objects.

Cases:
- hooks: regular objects and test hooks are separated; every other hook is refused, each
  object named with its hooks;
- the Application: found when rendered, None when not, two are refused; component kinds
  are compared on the API group whichever way the chart writes it;
- prepare: namespaced objects get the namespace (an explicit one is kept), the Application's
  selector labels go on metadata only (never pod templates), owner references only on
  namespaced component kinds in the same namespace, the Application itself untouched, the
  input never mutated; without an Application nothing is added;
- redaction: Secret data and stringData are replaced by sizes, other kinds untouched;
- create-only: only Flux's `ssa: IfNotPresent` marks an object; a marked object is kept when
  it exists and holds every data key the chart renders (by name), applied when it is
  missing or lacks one.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deployer import objects
from deployer.errors import RenderError

APP: dict[str, Any] = {
    "apiVersion": "app.k8s.io/v1beta1",
    "kind": "Application",
    "metadata": {"name": "t"},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "t"}},
        "componentKinds": [
            {"group": "apps/v1", "kind": "Deployment"},
            {"group": "v1", "kind": "Service"},
            {"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"},
        ],
    },
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "t", "labels": {"app.kubernetes.io/name": "chart"}},
    "spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": "chart"}}}},
}
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "t"}}
CONFIGMAP: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
ELSEWHERE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "gw", "namespace": "istio-system"},
}
CLUSTER_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "r"},
}
NAMESPACED = {
    ("apps", "Deployment"),
    ("", "Service"),
    ("", "ConfigMap"),
    ("app.k8s.io", "Application"),
}


def hooked(kind: str, hooks: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": kind.lower(), "annotations": {objects.HOOK_ANNOTATION: hooks}},
    }


def test_test_hooks_are_set_apart() -> None:
    test_pod = hooked("Pod", "test")
    regular, tests = objects.split_hooks([DEPLOYMENT, test_pod, hooked("Pod2", "test-success")])
    assert regular == [DEPLOYMENT]
    assert [t["kind"] for t in tests] == ["Pod", "Pod2"]


def test_other_hooks_are_refused_naming_each() -> None:
    with pytest.raises(RenderError) as caught:
        objects.split_hooks([hooked("Job", "pre-install"), hooked("ConfigMap", "test,post-delete")])
    text = str(caught.value)
    assert "Job/job (pre-install)" in text
    assert "ConfigMap/configmap (post-delete)" in text


def test_find_application() -> None:
    assert objects.find_application([DEPLOYMENT, APP]) is APP
    assert objects.find_application([DEPLOYMENT]) is None
    with pytest.raises(RenderError, match="more than one Application"):
        objects.find_application([APP, APP])


def test_component_kinds_compare_on_the_api_group() -> None:
    assert objects.component_kinds(APP) == {
        ("apps", "Deployment"),
        ("", "Service"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
    }


def test_prepare_labels_owns_and_places() -> None:
    given = [APP, DEPLOYMENT, SERVICE, CONFIGMAP, ELSEWHERE, CLUSTER_ROLE]
    before = copy.deepcopy(given)
    out = objects.prepare(
        given, namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="uid-1"
    )
    assert given == before, "the input is not mutated"
    app, deployment, service, configmap, elsewhere, cluster_role = out
    assert app == {**APP, "metadata": {"name": "t", "namespace": "ns"}}
    owner = {
        "apiVersion": "app.k8s.io/v1beta1",
        "kind": "Application",
        "name": "t",
        "uid": "uid-1",
        "blockOwnerDeletion": True,
    }
    assert deployment["metadata"]["ownerReferences"] == [owner]
    assert deployment["metadata"]["namespace"] == "ns"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "t"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app.kubernetes.io/name": "chart"}, "selectors are immutable"
    assert service["metadata"]["ownerReferences"] == [owner]
    assert "ownerReferences" not in configmap["metadata"], "not a component kind"
    assert configmap["metadata"]["labels"] == {"app.kubernetes.io/name": "t"}
    assert elsewhere["metadata"]["namespace"] == "istio-system"
    assert "ownerReferences" not in elsewhere["metadata"], "owners cannot cross namespaces"
    assert "namespace" not in cluster_role["metadata"]
    assert "ownerReferences" not in cluster_role["metadata"], "cluster-scoped"


def test_prepare_twice_keeps_one_owner_reference() -> None:
    once = objects.prepare(
        [APP, SERVICE], namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="u"
    )
    twice = objects.prepare(
        once, namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="u"
    )
    assert len(twice[1]["metadata"]["ownerReferences"]) == 1


def test_prepare_without_an_application_adds_only_namespaces() -> None:
    out = objects.prepare(
        [DEPLOYMENT], namespace="ns", namespaced=NAMESPACED, application=None, application_uid=None
    )
    assert out == [{**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"], "namespace": "ns"}}]


def test_redaction() -> None:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"key": "c2VjcmV0"},
        "stringData": {"token": "abc"},
    }
    redacted = objects.redact_secrets(secret)
    assert redacted["data"] == {"key": "<redacted: 8 chars>"}
    assert redacted["stringData"] == {"token": "<redacted: 3 chars>"}
    assert secret["data"]["key"] == "c2VjcmV0"
    assert objects.redact_secrets(CONFIGMAP) == CONFIGMAP


KEY_SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "k",
        "annotations": {objects.CREATE_ONLY_ANNOTATION: objects.CREATE_ONLY_VALUE},
    },
    "data": {"admin-key": "bmV3"},
}


@pytest.mark.parametrize(
    ("annotations", "create_only"),
    [
        ({objects.CREATE_ONLY_ANNOTATION: "IfNotPresent"}, True),
        ({objects.CREATE_ONLY_ANNOTATION: "Override"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_create_only_mark(annotations: dict[str, str] | None, create_only: bool) -> None:
    obj = {"kind": "Secret", "metadata": {"name": "k", "annotations": annotations}}
    assert objects.is_create_only(obj) is create_only


@pytest.mark.parametrize(
    ("live", "kept"),
    [
        (None, False),
        ({"data": {"admin-key": "b2xk"}}, True),
        ({"data": {"admin-key": "b2xk", "extra": "eA=="}}, True),
        ({"data": {"other": "b2xk"}}, False),
        ({"metadata": {"name": "k"}}, False),
    ],
    ids=["missing", "same-keys", "more-keys", "other-key", "no-data"],
)
def test_a_create_only_object_is_kept_when_it_holds_the_rendered_keys(
    live: dict[str, Any] | None, kept: bool
) -> None:
    assert objects.keeps_existing(KEY_SECRET, live) is kept
