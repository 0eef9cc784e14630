"""The Application's helpers: finding it, making the other objects its components, phases.

Cases:
- the Application: found when rendered, None when not, two are refused; component kinds
  are compared on the API group whichever way the chart writes it;
- prepare: namespaced objects get the namespace (an explicit one is kept); every object,
  the Application too, gets the chart's selector labels and `app.kubernetes.io/name: NAME`
  (the placeholder's selector) on its own labels, never on pod templates or selectors; a
  cluster-scoped one also `app.kubernetes.io/namespace`; owner references only on namespaced
  component kinds in the same namespace, never on the Application; the input never mutated;
  without an Application only namespaces are added;
- on the chart's own render the labels are exactly those Google's set_app_labels.py sets;
- the Application's version is schema.yaml's publishedVersion, which Google's
  patch_assembly_phase.sh requires before it marks Success;
- phase patches: the assembly phase, and a Ready condition whose status follows the phase,
  its message cut; phase_of reads what Marketplace shows (empty is Success, Failed with the
  reason).
"""

from __future__ import annotations

import copy
import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import application, objects, render, values
from deployer.errors import RenderError
from tests.conftest import CHART_DIR
from tests.deployer.conftest import BASE_VALUES, SCHEMA
from tests.deployer.google_tools import DEPLOYER_UTIL, google_module

APP: dict[str, Any] = {
    "apiVersion": "app.k8s.io/v1beta1",
    "kind": "Application",
    "metadata": {"name": "t"},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "t"}},
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


def test_find() -> None:
    assert application.find([DEPLOYMENT, APP]) is APP
    assert application.find([DEPLOYMENT]) is None
    with pytest.raises(RenderError, match="more than one Application"):
        application.find([APP, APP])


def test_component_kinds_compare_on_the_api_group() -> None:
    assert application.component_kinds(APP) == {
        ("apps", "Deployment"),
        ("", "Service"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
    }


def test_prepare_labels_owns_and_places() -> None:
    given = [APP, DEPLOYMENT, SERVICE, CONFIGMAP, ELSEWHERE, CLUSTER_ROLE]
    before = copy.deepcopy(given)
    out = application.prepare(
        given, namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="uid-1"
    )
    assert given == before, "the input is not mutated"
    app, deployment, service, configmap, elsewhere, cluster_role = out
    labels = {"app.kubernetes.io/instance": "t", "app.kubernetes.io/name": "t"}
    assert app["metadata"] == {"name": "t", "namespace": "ns", "labels": labels}
    assert app["spec"] == APP["spec"], "the Application's own selector stays the chart's"
    owner = {
        "apiVersion": "app.k8s.io/v1beta1",
        "kind": "Application",
        "name": "t",
        "uid": "uid-1",
        "blockOwnerDeletion": True,
    }
    assert deployment["metadata"]["ownerReferences"] == [owner]
    assert deployment["metadata"]["namespace"] == "ns"
    assert deployment["metadata"]["labels"] == labels, "the app's name over the chart's"
    assert deployment["spec"] == DEPLOYMENT["spec"], "pod template and selector untouched"
    assert service["metadata"]["ownerReferences"] == [owner]
    assert "ownerReferences" not in configmap["metadata"], "not a component kind"
    assert configmap["metadata"]["labels"] == labels
    assert elsewhere["metadata"]["namespace"] == "istio-system"
    assert "ownerReferences" not in elsewhere["metadata"], "owners cannot cross namespaces"
    assert "namespace" not in cluster_role["metadata"]
    assert cluster_role["metadata"]["labels"] == {**labels, "app.kubernetes.io/namespace": "ns"}
    assert "ownerReferences" not in cluster_role["metadata"], "cluster-scoped"


def test_prepare_twice_keeps_one_owner_reference() -> None:
    once = application.prepare(
        [APP, SERVICE], namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="u"
    )
    twice = application.prepare(
        once, namespace="ns", namespaced=NAMESPACED, application=APP, application_uid="u"
    )
    assert len(twice[1]["metadata"]["ownerReferences"]) == 1


def test_prepare_without_an_application_adds_only_namespaces() -> None:
    out = application.prepare(
        [DEPLOYMENT], namespace="ns", namespaced=NAMESPACED, application=None, application_uid=None
    )
    assert out == [{**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"], "namespace": "ns"}}]


def _render_chart(helm: Path, **form: Any) -> tuple[values.DeployValues, list[dict[str, Any]]]:
    release = values.resolve(values.load_schema(SCHEMA, chart=CHART_DIR), {**BASE_VALUES, **form})
    return release, render.render(
        helm=helm,
        chart=CHART_DIR,
        release=release.name,
        namespace=release.namespace,
        values=release.chart_values,
    )


def test_the_labels_are_those_set_app_labels_sets(helm4: Path) -> None:
    google_module("set_app_labels")  # skips where Google's tooling is absent
    release, rendered = _render_chart(
        helm4, **{"ingress.mode": "istio", "ingress.host": "triton.example.com"}
    )
    regular, tests = objects.split_hooks(rendered)
    every = [*regular, *tests]
    google = subprocess.run(
        [
            sys.executable,
            str(DEPLOYER_UTIL / "set_app_labels.py"),
            "--manifests=-",
            "--dest=-",
            f"--name={release.name}",
            f"--namespace={release.namespace}",
        ],
        input=yaml.safe_dump_all(every),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = list(yaml.safe_load_all(google.stdout))
    kinds = {(objects.group_of(o["apiVersion"]), o["kind"]) for o in every}
    ours = application.prepare(
        every,
        namespace=release.namespace,
        namespaced=kinds,
        application=application.find(regular),
        application_uid=None,
    )
    assert len(ours) == len(expected) > 5
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine == theirs, f"{objects.ObjectRef.of(mine)} is labelled otherwise"


def test_the_application_version_is_the_published_version(helm4: Path) -> None:
    _, rendered = _render_chart(helm4)
    found = application.find(rendered)
    assert found is not None
    published = yaml.safe_load(SCHEMA.read_text())["x-google-marketplace"]["publishedVersion"]
    assert found["spec"]["descriptor"]["version"] == published


@pytest.mark.parametrize(
    ("phase", "status"),
    [
        (application.Phase.PENDING, "Unknown"),
        (application.Phase.SUCCESS, "True"),
        (application.Phase.FAILED, "False"),
    ],
)
def test_phase_patches(phase: application.Phase, status: str) -> None:
    assert application.phase_patch(phase) == {"spec": {"assemblyPhase": phase.value}}
    now = datetime.datetime(2026, 11, 30, 6, 0, tzinfo=datetime.UTC)
    patch = application.status_patch(phase, reason="Why", message="x" * 3000, now=now)
    (condition,) = patch["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Ready", status, "Why")
    assert len(condition["message"]) == application.MAX_MESSAGE
    assert condition["lastTransitionTime"] == "2026-11-30T06:00:00Z"


def test_phase_of() -> None:
    assert application.phase_of(None) == "absent"
    assert application.phase_of({"spec": {}}) == "Success"
    assert application.phase_of({"spec": {"assemblyPhase": "Pending"}}) == "Pending"
    failed: dict[str, Any] = {
        "spec": {"assemblyPhase": "Failed"},
        "status": {"conditions": [{"type": "Ready", "reason": "NotReady", "message": "m"}]},
    }
    assert application.phase_of(failed) == "Failed (NotReady: m)"
