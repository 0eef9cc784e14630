"""``verify``: what Google's ``deploy_with_tests.sh`` and ``run_tester.py`` do with a deploy,
as ``mpdev verify`` runs it: deploy, run the chart's tests as Marketplace testers with their
log on the deployer's, mark the Application Failed if one fails, then clean up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from deployer import application
from deployer.actions import Plan, Report, application_ref, delete, deploy, set_phase
from deployer.errors import ClusterError, VerificationError
from deployer.objects import ObjectRef

if TYPE_CHECKING:  # the Kubernetes client loads only when a command reaches the cluster
    from deployer.cluster import Cluster

CLEANUP_S = 60.0
"""What ``verify`` keeps back from its deadline to delete what it applied (at most a fifth of
the deadline): finished testers and background deletion go in seconds."""


SMOKE_TEST = "SMOKE_TEST "
"""The prefix Google's ``deploy_with_tests.sh`` puts on the tester's report: ``mpdev verify``
keeps the deployer log's lines that start with it as the test log."""


def run_testers(
    plan: Plan,
    cluster: Cluster,
    *,
    report: Report,
    timeout_s: float,
    poll_s: float,
    keep_s: float = 0.0,
) -> bool:
    """Google's ``run_tester.py``: apply the testers (owned by the Application, as
    ``separate_tester_resources.py`` sets), then follow each tester Pod in turn until it
    Succeeded or Failed or ``timeout_s`` passed since its turn began, and print its log and
    the verdict, every line prefixed SMOKE_TEST. Returns whether every tester succeeded.

    Like every wait, it ends early enough to report before the cluster's deadline, and
    ``keep_s`` earlier still."""

    def smoke(line: str) -> None:
        report(SMOKE_TEST + line)

    app_ref = application_ref(plan)
    app_live = cluster.get(app_ref) if app_ref else None
    prepared = application.prepare_testers(
        plan.tests,
        namespace=plan.release.namespace,
        namespaced=cluster.namespaced_kinds(plan.tests),
        application=plan.application,
        application_uid=str(app_live["metadata"]["uid"]) if app_live else None,
    )
    cluster.apply_all(prepared)
    passed = True
    for tester in prepared:
        ref = ObjectRef.of(tester)
        if ref.kind != "Pod":
            smoke(f"INFO Skip '{ref}'")
            continue
        give_up = time.monotonic() + min(
            timeout_s, cluster.deadline.keeping(keep_s + cluster.deadline.report_reserve())
        )
        phase = None
        while True:
            live = cluster.get(ref)
            phase = ((live or {}).get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") or time.monotonic() >= give_up:
                break
            time.sleep(max(0.0, min(poll_s, give_up - time.monotonic())))
        try:
            for line in cluster.pod_log(ref.name).splitlines():
                smoke(line)
        except ClusterError as exc:
            smoke(f"ERROR Failed to get the tester logs: {exc}")
        if phase == "Succeeded":
            smoke(f"INFO Tester '{ref}' succeeded.")
            continue
        passed = False
        smoke(f"ERROR Tester '{ref}' {'failed' if phase == 'Failed' else 'timeout'}.")
    return passed


def verify(
    plan: Plan,
    cluster: Cluster,
    *,
    report: Report,
    tester_timeout_s: float,
    poll_s: float = 2.0,
    keep_app: bool = False,
) -> None:
    """Google's ``deploy_with_tests.sh``: deploy (phase Success once ready), then run the
    chart's tests as Marketplace testers (:func:`run_testers`); a tester that fails or times
    out marks the Application Failed. ``mpdev verify`` deletes the application and its
    testers itself (``keep_app``); otherwise everything is deleted, whatever happened.
    Raises VerificationError if the deploy or a tester failed."""
    if not plan.tests:
        raise VerificationError(
            "the chart renders no test objects (helm.sh/hook: test): nothing to verify with"
        )
    # Time for the clean-up, which mpdev does itself when the app is kept.
    cleanup_s = 0.0 if keep_app else min(CLEANUP_S, cluster.deadline.seconds / 5)
    try:
        deploy(plan, cluster, report=report, poll_s=poll_s, keep_s=cleanup_s)
        try:
            passed = run_testers(
                plan,
                cluster,
                report=report,
                timeout_s=tester_timeout_s,
                poll_s=poll_s,
                keep_s=cleanup_s,
            )
        except ClusterError as exc:
            set_phase(
                cluster,
                plan,
                phase=application.Phase.FAILED,
                reason="TesterFailed",
                message=str(exc),
            )
            raise
        if not passed:
            message = "At least 1 test failed or timed out."
            set_phase(
                cluster,
                plan,
                phase=application.Phase.FAILED,
                reason="TesterFailed",
                message=message,
            )
            raise VerificationError(f"verification failed: {message}")
    except VerificationError:
        raise
    except ClusterError as exc:
        raise VerificationError(f"verification failed: {exc}") from exc
    finally:
        if not keep_app:
            report("cleaning up")
            delete(plan, cluster, report=report, poll_s=poll_s)
    report("verification passed")
