"""What each command does, step by step: plan (offline), then deploy, status, delete
(``verify`` builds on them in its own module).

A plan is everything that can be known without a cluster: checked values and rendered
objects. It is made in full before the first request, so bad input never half-applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer import application, objects, readiness, render, values
from deployer.errors import ClusterError, ReadinessTimeout
from deployer.objects import Object, ObjectRef

if TYPE_CHECKING:  # the Kubernetes client loads only when a command reaches the cluster
    from deployer.cluster import Cluster

Report = Callable[[str], None]


@dataclass(frozen=True)
class Inputs:
    """Where the deployer reads its input."""

    chart: Path
    """The chart directory (``/data/chart`` in the image)."""
    schema: Path
    """``schema.yaml`` (``/data/schema.yaml`` in the image)."""
    values: Path
    """The values file, or the Marketplace's values folder (one file per key)."""
    helm: Path | None = None
    """The helm binary (None: found as :func:`render.find_helm` does); looked for once the
    values are known to be good, so bad values are reported first, helm or not."""
    test_schema: Path | None = None
    """For ``verify``: properties laid over the schema (``/data-test/schema.yaml``)."""


@dataclass(frozen=True)
class Plan:
    """A deploy worked out offline."""

    release: values.DeployValues
    """Name, namespace and chart values."""
    objects: list[Object]
    """Rendered objects to apply, in Helm's install order, hooks removed."""
    tests: list[Object]
    """The chart's ``helm test`` objects, applied only by ``verify``."""
    application: Object | None
    """The rendered Marketplace Application, if any (also in ``objects``)."""


def make_plan(inputs: Inputs) -> Plan:
    """Validate the values and render the chart. Raises BadInputError subclasses only."""
    schema = values.load_schema(inputs.schema, chart=inputs.chart, test_schema=inputs.test_schema)
    release = values.resolve(schema, values.load_values(inputs.values, schema))
    rendered = render.render(
        helm=render.find_helm(str(inputs.helm) if inputs.helm else None),
        chart=inputs.chart,
        release=release.name,
        namespace=release.namespace,
        values=release.chart_values,
    )
    regular, tests = objects.split_hooks(rendered)
    app = application.find(regular)
    if app is not None:
        application.check_listing(
            app,
            partner_id=schema.partner_id,
            solution_id=schema.solution_id,
            published_version=schema.published_version,
        )
    return Plan(release=release, objects=regular, tests=tests, application=app)


def application_ref(plan: Plan) -> ObjectRef | None:
    if plan.application is None:
        return None
    return application.ref_in(plan.application, plan.release.namespace)


@dataclass(frozen=True)
class Applied:
    """One object after :func:`apply_or_keep`."""

    live: Object
    """The object as the cluster holds it."""
    kept: bool = False
    """True for a create-only object that already existed and was left untouched."""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.live)


def apply_or_keep(cluster: Cluster, prepared: list[Object]) -> list[Applied]:
    """Apply every object in order, except a create-only one (see
    :func:`objects.is_create_only`) that the cluster holds with every data key the chart
    renders: that one is read and kept. Raises ApplyError naming every object that failed."""
    kept: dict[int, Object] = {}
    for index, obj in enumerate(prepared):
        if objects.is_create_only(obj):
            # Read to decide only; the object (a Secret's data included) is never printed.
            live = cluster.get(ObjectRef.of(obj))
            if live is not None and objects.keeps_existing(obj, live):
                kept[index] = live
    applied = iter(cluster.apply_all([o for i, o in enumerate(prepared) if i not in kept]))
    return [
        Applied(live=kept[i], kept=True) if i in kept else Applied(live=next(applied))
        for i in range(len(prepared))
    ]


def _write_phase(
    cluster: Cluster, ref: ObjectRef, *, phase: application.Phase, reason: str, message: str
) -> None:
    cluster.merge_patch(ref, application.phase_patch(phase))
    cluster.merge_patch(
        ref,
        application.status_patch(phase, reason=reason, message=message),
        subresource="status",
    )


def set_phase(
    cluster: Cluster, plan: Plan, *, phase: application.Phase, reason: str, message: str
) -> None:
    """Write the Application's phase and the reason for it (nothing without an Application)."""
    ref = application_ref(plan)
    if ref is not None:
        _write_phase(cluster, ref, phase=phase, reason=reason, message=message)


def mark_failed(cluster: Cluster, *, name: str, namespace: str, reason: str, message: str) -> bool:
    """What the trap of Google's ``deploy.sh`` does on any failure, the input's included:
    mark the Application ``NAME`` Failed, if it exists (Marketplace's placeholder, or ours)
    and does not say Failed already (with a reason closer to the failure). Returns whether it
    says Failed now."""
    ref = ObjectRef(application.API_VERSION, "Application", name, namespace)
    live = cluster.get(ref)
    if live is None:
        return False
    if (live.get("spec") or {}).get("assemblyPhase") != application.Phase.FAILED.value:
        _write_phase(cluster, ref, phase=application.Phase.FAILED, reason=reason, message=message)
    return True


DEPLOYER_COMPONENT = "deployer.marketplace.cloud.google.com"
"""``app.kubernetes.io/component`` of the deployer's own objects (``provision.py``)."""


def remove_deployer_service_account(cluster: Cluster, *, name: str, report: Report) -> int:
    """What Google's ``clean_iam_resources.sh`` does after a successful deploy: delete the
    ServiceAccounts labelled as app ``name``'s deployer (by ``provision.py`` and
    ``set_app_labels.py``), without waiting. The token this deployer runs with goes with its
    account, so this is its last request. Returns how many were deleted."""
    selector = f"app.kubernetes.io/component={DEPLOYER_COMPONENT},{application.NAME_LABEL}={name}"
    accounts = cluster.list_objects("v1", "ServiceAccount", label_selector=selector)
    if not accounts:
        report(f"no ServiceAccount labelled {selector} to remove")
    for account in accounts:
        ref = ObjectRef.of({**account, "apiVersion": "v1", "kind": "ServiceAccount"})
        if cluster.delete(ref):
            report(f"removed the deployer's {ref}")
    return len(accounts)


def _explainer(cluster: Cluster) -> readiness.Explain:
    """Why an object is not ready, from the cluster: its events, and for a Deployment its
    pods and theirs. A failure to read them is reported, never raised: the timeout that
    asked must still be reported."""

    def explain_why(ref: ObjectRef, live: Mapping[str, Any] | None) -> list[str]:
        pods: list[Object] = []
        events: list[Object] = []
        try:
            if live is not None and ref.kind == "Deployment":
                selector = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels")
                terms = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
                pods = cluster.list_objects("v1", "Pod", label_selector=terms) if terms else []
            events = cluster.events_for(ref)
            for pod in pods[:3]:
                events += cluster.events_for(ObjectRef.of(pod))
        except ClusterError as exc:
            return [*readiness.explain(live, events=events, pods=pods), f"({exc})"]
        return readiness.explain(live, events=events, pods=pods)

    return explain_why


def _prepare(cluster: Cluster, plan: Plan, *, report: Report) -> list[Object]:
    """Apply the Application first (its uid owns the rest), then return every other object
    ready to apply."""
    namespace = plan.release.namespace
    namespaced = cluster.namespaced_kinds([*plan.objects, *plan.tests])
    app_uid = None
    if plan.application is not None:
        app = application.prepare(
            [plan.application],
            namespace=namespace,
            namespaced=namespaced,
            application=plan.application,
            application_uid=None,
        )[0]
        # Pending from its first write, as Google's deploy.sh applies it (an Application
        # with no phase reads as Success).
        live = cluster.apply_all([application.with_phase(app, application.Phase.PENDING)])[0]
        app_uid = str(live["metadata"]["uid"])
        report(f"applied {ObjectRef.of(app)} (uid {app_uid}), phase Pending")
        cluster.merge_patch(
            ObjectRef.of(live),
            application.status_patch(
                application.Phase.PENDING, reason="Deploying", message="applying objects"
            ),
            subresource="status",
        )
    rest = [o for o in plan.objects if o is not plan.application]
    return application.prepare(
        rest,
        namespace=namespace,
        namespaced=namespaced,
        application=plan.application,
        application_uid=app_uid,
    )


def _apply_prepared(cluster: Cluster, prepared: list[Object], *, report: Report) -> list[ObjectRef]:
    applied = apply_or_keep(cluster, prepared)
    for done in applied:
        if done.kept:
            report(f"kept {done.ref}: it exists and is created once, never overwritten")
        else:
            report(f"applied {done.ref}")
    return [done.ref for done in applied]


def apply(plan: Plan, cluster: Cluster, *, report: Report) -> list[ObjectRef]:
    """Apply the plan without waiting: the Application first (phase Pending, its uid read
    back), then every other object by server-side apply, owned by it. Returns the refs of the
    objects applied after the Application. :func:`deploy` is this, then the wait for
    readiness and the Application's phase."""
    return _apply_prepared(cluster, _prepare(cluster, plan, report=report), report=report)


def deploy(
    plan: Plan,
    cluster: Cluster,
    *,
    report: Report,
    poll_s: float = 2.0,
    keep_s: float = 0.0,
) -> list[ObjectRef]:
    """Apply the plan and wait until every object is ready, within the cluster's deadline;
    the Application ends in phase Success, or Failed with the reason before the error is
    raised again.

    The wait stops early enough to explain a failure and write it to the Application before
    the deadline, and ``keep_s`` earlier still (time a caller needs afterwards).
    Returns the refs of every object applied, the Application first.
    """
    report(
        f"deploying {plan.release.name} into namespace {plan.release.namespace}: "
        f"{len(plan.objects)} objects"
    )
    prepared = _prepare(cluster, plan, report=report)
    try:
        refs = _apply_prepared(cluster, prepared, report=report)
        report("waiting for readiness")
        readiness.wait_until_ready(
            refs,
            fetch=cluster.get,
            explain_why=_explainer(cluster),
            report=report,
            timeout_s=cluster.deadline.keeping(keep_s + cluster.deadline.report_reserve()),
            poll_s=poll_s,
        )
    except ClusterError as exc:
        reason = "NotReady" if isinstance(exc, ReadinessTimeout) else "ApplyFailed"
        try:
            set_phase(
                cluster, plan, phase=application.Phase.FAILED, reason=reason, message=str(exc)
            )
        except ClusterError as phase_exc:
            report(f"could not mark the Application Failed: {phase_exc}")
        raise
    set_phase(
        cluster,
        plan,
        phase=application.Phase.SUCCESS,
        reason="Ready",
        message=f"{len(refs)} objects ready",
    )
    app_ref = application_ref(plan)
    report(f"{plan.release.name} is ready" + (" (Application phase Success)" if app_ref else ""))
    return ([app_ref] if app_ref else []) + refs


def _all_refs(plan: Plan, *, with_tests: bool) -> list[ObjectRef]:
    """Every object of the plan in apply order, namespaced ones in the release namespace
    (cluster-scoped kinds ignore it)."""
    listed = [*plan.objects, *(plan.tests if with_tests else [])]
    if plan.application is not None:
        listed.remove(plan.application)
        listed.insert(0, plan.application)
    refs = []
    for obj in listed:
        ref = ObjectRef.of(obj)
        refs.append(
            ObjectRef(ref.api_version, ref.kind, ref.name, ref.namespace or plan.release.namespace)
        )
    return refs


def status(plan: Plan, cluster: Cluster, *, report: Report) -> bool:
    """Report each object's readiness and the Application's phase. Returns True when every
    object exists and is ready."""
    all_ready = True
    for ref in _all_refs(plan, with_tests=False):
        live = cluster.get(ref)
        if ref == application_ref(plan):
            phase = application.phase_of(live)
            report(f"{ref}: phase {phase}")
            all_ready &= phase == application.Phase.SUCCESS.value
            continue
        now = readiness.readiness(live)
        report(f"{ref}: {now.message}")
        all_ready &= now.ready
    return all_ready


def delete(plan: Plan, cluster: Cluster, *, report: Report, poll_s: float = 2.0) -> None:
    """Delete every object of the plan in reverse apply order (the Application last), then
    wait, within the cluster's deadline, until all are gone. Objects already gone are
    skipped."""
    refs = list(reversed(_all_refs(plan, with_tests=True)))
    for ref in refs:
        report(f"deleted {ref}" if cluster.delete(ref) else f"{ref} already gone")
    _wait_gone(refs, cluster=cluster, report=report, poll_s=poll_s)


def _wait_gone(refs: list[ObjectRef], *, cluster: Cluster, report: Report, poll_s: float) -> None:
    deadline = cluster.deadline
    remaining = list(refs)
    while remaining:
        remaining = [ref for ref in remaining if cluster.get(ref) is not None]
        if not remaining:
            break
        if deadline.remaining() <= 0:
            raise ReadinessTimeout(
                [f"{ref}: still present (finalizers?)" for ref in remaining],
                timeout_s=deadline.seconds,
            )
        names = ", ".join(map(str, remaining[:3]))
        report(f"waiting for {len(remaining)} object(s) to go: {names}")
        time.sleep(min(poll_s, deadline.remaining()))
    report(f"all {len(refs)} objects deleted")
