"""Pure transformations of rendered objects: hooks, namespaces, labels, owner references,
the create-only mark, redaction. (What the Application adds is in ``application``.)

Every function returns new dicts and leaves its input alone. No object is built here: they
all come from the chart; the deployer only adds labels, annotations and owner references.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import RenderError

HOOK_ANNOTATION = "helm.sh/hook"
TEST_HOOKS = frozenset({"test", "test-success"})
VERIFICATION_ANNOTATION = "marketplace.cloud.google.com/verification"
# "Create only": apply when missing, never overwrite. Flux's annotation for it, so that one
# mark serves the deployer and GitOps tools alike.
CREATE_ONLY_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
CREATE_ONLY_VALUE = "IfNotPresent"

Object = dict[str, Any]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Names one object: enough to get, patch or delete it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        metadata = obj.get("metadata") or {}
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=str(obj["kind"]),
            name=str(metadata.get("name", "")),
            namespace=metadata.get("namespace"),
        )

    @property
    def group(self) -> str:
        """The API group (``""`` for the core group)."""
        return group_of(self.api_version)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def group_of(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def hook_types(obj: Mapping[str, Any]) -> set[str]:
    """The Helm hooks an object is annotated with (empty for a regular object)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    raw = str(annotations.get(HOOK_ANNOTATION, ""))
    return {h.strip() for h in raw.split(",") if h.strip()}


def is_create_only(obj: Mapping[str, Any]) -> bool:
    """Whether the chart marks an object to be created once and never overwritten (a
    generated key: applying a fresh render would replace it under running pods)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(CREATE_ONLY_ANNOTATION) == CREATE_ONLY_VALUE


def _data_keys(obj: Mapping[str, Any]) -> set[str]:
    return {str(k) for f in ("data", "stringData") for k in (obj.get(f) or {})}


def keeps_existing(rendered: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether a create-only object is left as the cluster holds it: it exists and holds
    every data key the chart renders (only key names are compared, never values). A key
    the live object lacks would leave pods referring to nothing, so then it is applied."""
    return live is not None and _data_keys(rendered) <= _data_keys(live)


def split_hooks(objects: Iterable[Object]) -> tuple[list[Object], list[Object]]:
    """Separate regular objects from ``helm test`` objects.

    Returns ``(regular, tests)``. Raises RenderError naming every object with another hook:
    the deployer applies plain manifests and cannot honour install or upgrade ordering.
    """
    regular: list[Object] = []
    tests: list[Object] = []
    refused: list[str] = []
    for obj in objects:
        hooks = hook_types(obj)
        if not hooks:
            regular.append(obj)
        elif hooks <= TEST_HOOKS:
            tests.append(obj)
        else:
            refused.append(f"{ObjectRef.of(obj)} ({', '.join(sorted(hooks - TEST_HOOKS))})")
    if refused:
        raise RenderError(
            "the chart renders Helm hooks the deployer cannot run: "
            + "; ".join(refused)
            + ". Only test hooks are supported: make these regular templates"
        )
    return regular, tests


def with_namespace(obj: Mapping[str, Any], namespace: str) -> Object:
    """A copy of a namespaced object with ``metadata.namespace`` set where the chart left it out."""
    out = copy.deepcopy(dict(obj))
    out.setdefault("metadata", {}).setdefault("namespace", namespace)
    return out


def with_labels(obj: Mapping[str, Any], labels: Mapping[str, str]) -> Object:
    """A copy with ``labels`` added to ``metadata.labels`` (pod templates are left alone:
    their labels feed immutable selectors)."""
    out = copy.deepcopy(dict(obj))
    if labels:
        out.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    return out


def as_tester(obj: Mapping[str, Any]) -> Object:
    """A ``helm test`` object as a Marketplace tester, as Google's ``process_helm_hooks.py``
    makes one: its ``helm.sh/hook`` annotation replaced by
    ``marketplace.cloud.google.com/verification: test``."""
    out = copy.deepcopy(dict(obj))
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.pop(HOOK_ANNOTATION, None)
    annotations[VERIFICATION_ANNOTATION] = "test"
    return out


def with_owner(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> Object:
    """A copy owned by ``owner`` (replacing any earlier reference to the same owner uid)."""
    out = copy.deepcopy(dict(obj))
    refs = out.setdefault("metadata", {}).setdefault("ownerReferences", [])
    refs[:] = [r for r in refs if r.get("uid") != owner["uid"]] + [dict(owner)]
    return out


def redact_secrets(obj: Mapping[str, Any]) -> Object:
    """A copy safe to print: a Secret's ``data`` and ``stringData`` values are replaced by
    their size, so logs never carry secret material."""
    out = copy.deepcopy(dict(obj))
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1":
        for field in ("data", "stringData"):
            if isinstance(out.get(field), dict):
                out[field] = {k: f"<redacted: {len(str(v))} chars>" for k, v in out[field].items()}
    return out
