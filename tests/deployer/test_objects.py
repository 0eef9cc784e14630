"""Pure transformations of rendered objects.

Cases:
- hooks: regular objects and test hooks are separated; every other hook is refused, each
  object named with its hooks;
- redaction: Secret data and stringData are replaced by sizes, other kinds untouched;
- create-only: only Flux's `ssa: IfNotPresent` marks an object; a marked object is kept when
  it exists and holds every data key the chart renders (by name), applied when it is
  missing or lacks one.
"""

from __future__ import annotations

from typing import Any

import pytest

from deployer import objects
from deployer.errors import RenderError

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "t", "labels": {"app.kubernetes.io/name": "chart"}},
}
CONFIGMAP: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


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
