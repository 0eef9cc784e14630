"""Everything about the Marketplace Application, in one place: finding the chart's, the
labels and owner references that make the other objects its components, and the phase
patches that say how a deploy is going.

GKE Marketplace shows an app through its ``app.k8s.io`` Application. ``mpdev install`` (and
the Marketplace UI) create a placeholder of that name before the deployer runs, selecting
``app.kubernetes.io/name: NAME``; server-side apply merges the chart's selector into it key
by key, so the components must carry both. Like Google's ``set_app_labels.py``, every applied
object gets ``app.kubernetes.io/name: NAME`` on its own labels (never on pod templates or
selectors, which stay the chart's). Marketplace reads ``spec.assemblyPhase`` (``Pending``,
``Success``, ``Failed``); the reason goes in a ``Ready`` condition of the status, where
``kubectl describe application`` shows it.

Pure functions: the caller sends what they return.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from deployer.errors import RenderError
from deployer.objects import (
    Object,
    ObjectRef,
    as_tester,
    with_labels,
    with_namespace,
    with_owner,
)

API_VERSION = "app.k8s.io/v1beta1"
NAME_LABEL = "app.kubernetes.io/name"
"""The label of the placeholder's selector, set to the app's name on every component."""
NAMESPACE_LABEL = "app.kubernetes.io/namespace"
"""What ``set_app_labels.py`` adds to a cluster-scoped object, which has no namespace."""
MAX_MESSAGE = 2000
"""Condition messages are cut here: an Application is no place for a long log."""
DEPLOY_INFO = "marketplace.cloud.google.com/deploy-info"
"""The annotation that ties the Application to its listing: JSON with ``partner_id`` and
``product_id``, which Google's ``deploy.sh`` requires (``validate_app_resource.py``)."""


def find(objects: Iterable[Object]) -> Object | None:
    """The rendered Marketplace Application, if the chart renders one (at most one)."""
    found = [
        obj
        for obj in objects
        if obj.get("kind") == "Application" and obj.get("apiVersion") == API_VERSION
    ]
    if len(found) > 1:
        names = ", ".join(str(ObjectRef.of(o)) for o in found)
        raise RenderError(f"the chart renders more than one Application ({names}): render one")
    return found[0] if found else None


def check_listing(
    application: Mapping[str, Any], *, partner_id: str, solution_id: str, published_version: str
) -> None:
    """Refuse an Application Marketplace would refuse, as Google's ``deploy.sh`` does before
    applying anything (``validate_app_resource.py``): the ``deploy-info`` annotation must be
    JSON holding ``partner_id`` and ``product_id``, equal to the schema's ``partnerId`` and
    ``solutionId`` when it declares them, and ``spec.descriptor.version`` must be the
    schema's ``publishedVersion``. Raises RenderError saying what to change."""
    name = ObjectRef.of(application)
    annotations = (application.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(DEPLOY_INFO)
    if not text:
        raise RenderError(
            f"{name} has no {DEPLOY_INFO} annotation, which GKE Marketplace requires: set "
            "x-google-marketplace.partnerId and solutionId in schema.yaml (Producer Portal "
            "gives both)"
        )
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or not {"partner_id", "product_id"} <= set(info):
        raise RenderError(
            f"{name}: its {DEPLOY_INFO} annotation must be JSON with partner_id and "
            f"product_id, not {text!r}"
        )
    if partner_id and (info["partner_id"], info["product_id"]) != (partner_id, solution_id):
        raise RenderError(
            f"{name}: its {DEPLOY_INFO} annotation names partner {info['partner_id']!r} and "
            f"product {info['product_id']!r}, but schema.yaml says partnerId {partner_id!r} "
            f"and solutionId {solution_id!r}: the chart must render the schema's IDs"
        )
    version = ((application.get("spec") or {}).get("descriptor") or {}).get("version")
    if version != published_version:
        raise RenderError(
            f"{name}: spec.descriptor.version is {version!r}, but schema.yaml's "
            f"publishedVersion is {published_version!r}: make the chart's version and "
            "publishedVersion equal"
        )


def ref_in(application: Mapping[str, Any], namespace: str) -> ObjectRef:
    """The Application's ref in the release namespace."""
    ref = ObjectRef.of(application)
    return ObjectRef(ref.api_version, ref.kind, ref.name, namespace)


def _normal_group(group: str) -> str:
    """Marketplace examples write the core group as ``v1`` and others as ``apps/v1``; the
    Application controller means the API group, so compare on that."""
    if group in ("", "v1", "core"):
        return ""
    return group.split("/")[0]


def component_kinds(application: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The ``(group, kind)`` pairs the Application lists in ``spec.componentKinds``."""
    kinds = (application.get("spec") or {}).get("componentKinds") or []
    return {
        (_normal_group(str(k.get("group", ""))), str(k["kind"])) for k in kinds if k.get("kind")
    }


def selector_labels(application: Mapping[str, Any]) -> dict[str, str]:
    """The labels of the chart's Application selector."""
    selector = (application.get("spec") or {}).get("selector") or {}
    return {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}


def component_labels(application: Mapping[str, Any]) -> dict[str, str]:
    """The labels every component carries: the chart's selector and the placeholder's
    ``app.kubernetes.io/name: NAME``, so the merged selector lists them."""
    return {**selector_labels(application), NAME_LABEL: str(application["metadata"]["name"])}


def owner_reference(application: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """An owner reference to the live Application (``uid`` from the cluster)."""
    return {
        "apiVersion": application["apiVersion"],
        "kind": application["kind"],
        "name": application["metadata"]["name"],
        "uid": uid,
        "blockOwnerDeletion": True,
    }


def prepare(
    objects: Iterable[Object],
    *,
    namespace: str,
    namespaced: set[tuple[str, str]],
    application: Mapping[str, Any] | None,
    application_uid: str | None,
) -> list[Object]:
    """Every rendered object made ready to apply, in order.

    ``namespaced`` holds the ``(group, kind)`` pairs the cluster serves as namespaced. Those
    get the namespace. With an Application, every object (the Application too) gets
    :func:`component_labels` on its own labels, a cluster-scoped one also
    ``app.kubernetes.io/namespace``; namespaced objects whose kind the Application lists
    get an owner reference to it (``application_uid``), so deleting the Application deletes
    them. Cluster-scoped objects cannot have a namespaced owner.
    """
    labels = component_labels(application) if application else {}
    kinds = component_kinds(application) if application else set()
    owner = (
        owner_reference(application, application_uid)
        if application is not None and application_uid
        else None
    )
    prepared: list[Object] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        is_namespaced = (ref.group, ref.kind) in namespaced
        out = with_namespace(obj, namespace) if is_namespaced else copy.deepcopy(obj)
        if application is not None:
            out = with_labels(
                out, labels if is_namespaced else {**labels, NAMESPACE_LABEL: namespace}
            )
        is_application = application is not None and ref == ObjectRef.of(application)
        if not is_application:
            same_namespace = out["metadata"].get("namespace") == namespace
            if owner and is_namespaced and same_namespace and (ref.group, ref.kind) in kinds:
                out = with_owner(out, owner)
        prepared.append(out)
    return prepared


def prepare_testers(
    tests: Iterable[Object],
    *,
    namespace: str,
    namespaced: set[tuple[str, str]],
    application: Mapping[str, Any] | None,
    application_uid: str | None,
) -> list[Object]:
    """The chart's ``helm test`` objects as Marketplace testers, ready to apply: made testers
    as ``process_helm_hooks.py`` makes them (:func:`objects.as_tester`), prepared like the
    other components, and each owned by the Application whatever its kind, as
    ``separate_tester_resources.py`` sets it, so they go when it goes."""
    prepared = prepare(
        [as_tester(t) for t in tests],
        namespace=namespace,
        namespaced=namespaced,
        application=application,
        application_uid=application_uid,
    )
    if application is None or not application_uid:
        return prepared
    owner = owner_reference(application, application_uid)
    return [with_owner(t, owner) for t in prepared]


class Phase(Enum):
    PENDING = "Pending"
    SUCCESS = "Success"
    FAILED = "Failed"


_CONDITION_STATUS = {Phase.PENDING: "Unknown", Phase.SUCCESS: "True", Phase.FAILED: "False"}


def with_phase(application: Mapping[str, Any], phase: Phase) -> Object:
    """A copy of the Application with its assembly phase set."""
    out = copy.deepcopy(dict(application))
    out.setdefault("spec", {})["assemblyPhase"] = phase.value
    return out


def phase_patch(phase: Phase) -> dict[str, Any]:
    """The merge patch that sets the Application's assembly phase."""
    return {"spec": {"assemblyPhase": phase.value}}


def status_patch(
    phase: Phase, *, reason: str, message: str, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The merge patch for the status subresource: one ``Ready`` condition with the reason.

    ``reason`` is a CamelCase word (``Deploying``, ``ApplyFailed``, ``NotReady``); ``message``
    says what happened, cut to MAX_MESSAGE characters.
    """
    stamp = (now or datetime.datetime.now(tz=datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": _CONDITION_STATUS[phase],
                    "reason": reason,
                    "message": text,
                    "lastTransitionTime": stamp,
                    "lastUpdateTime": stamp,
                }
            ]
        }
    }


def phase_of(application: dict[str, Any] | None) -> str:
    """The live Application's phase as Marketplace shows it (empty means Success), with the
    reason when it failed."""
    if application is None:
        return "absent"
    phase = str((application.get("spec") or {}).get("assemblyPhase") or "Success")
    if phase != Phase.FAILED.value:
        return phase
    conditions = (application.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        return phase
    return f"{phase} ({ready.get('reason', '')}: {ready.get('message', '')})"
