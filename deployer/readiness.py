"""When is an applied object ready? One predicate per kind, and a wait loop with progress.

The predicates are pure functions of the live object. The loop reads objects through a
function it is given, so it never talks to the API itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from deployer.errors import ReadinessTimeout
from deployer.objects import ObjectRef


class State(Enum):
    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"
    """Will not get ready by waiting longer (a progress deadline passed, a pod failed)."""


@dataclass(frozen=True)
class Readiness:
    """How far one object is."""

    state: State
    message: str
    """What it waits for, or why it failed; a short line for progress output."""

    @property
    def ready(self) -> bool:
        return self.state is State.READY


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or []}


def deployment(obj: Mapping[str, Any]) -> Readiness:
    """kubectl's rollout rule: the controller has seen this generation, every replica is
    updated, no old ones are left, every updated one is available; a Progressing condition
    with reason ProgressDeadlineExceeded is a failure."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if int(metadata.get("generation", 0)) > int(status.get("observedGeneration", 0)):
        return Readiness(State.WAITING, "waiting for the controller to observe the new spec")
    progressing = _conditions(obj).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Readiness(
            State.FAILED,
            f"exceeded its progress deadline: {progressing.get('message', 'no message')}",
        )
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < wanted:
        return Readiness(State.WAITING, f"{updated} of {wanted} new replicas updated")
    if total > updated:
        return Readiness(State.WAITING, f"{total - updated} old replicas pending termination")
    if available < updated:
        return Readiness(State.WAITING, f"{available}/{updated} replicas available")
    return Readiness(State.READY, f"{available}/{wanted} replicas available")


def service(obj: Mapping[str, Any]) -> Readiness:
    """A LoadBalancer Service is ready once it has an external address; others at once."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return Readiness(State.READY, "ready")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [str(i.get("ip") or i.get("hostname")) for i in ingress]
    addresses = [a for a in addresses if a != "None"]
    if not addresses:
        return Readiness(State.WAITING, "waiting for a load balancer address")
    return Readiness(State.READY, f"address {', '.join(addresses)}")


def horizontal_pod_autoscaler(obj: Mapping[str, Any]) -> Readiness:
    """An HPA is ready when present: it scales from the metrics it gets later."""
    return Readiness(State.READY, "present")


def pod_completed(obj: Mapping[str, Any]) -> Readiness:
    """A run-to-completion pod (the Marketplace tester): ready when it Succeeded."""
    phase = (obj.get("status") or {}).get("phase", "Pending")
    if phase == "Succeeded":
        return Readiness(State.READY, "succeeded")
    if phase == "Failed":
        reason = (obj.get("status") or {}).get("reason") or "a container exited non-zero"
        return Readiness(State.FAILED, f"failed ({reason})")
    return Readiness(State.WAITING, f"phase {phase}")


PREDICATES: dict[str, Callable[[Mapping[str, Any]], Readiness]] = {
    "Deployment": deployment,
    "Service": service,
    "HorizontalPodAutoscaler": horizontal_pod_autoscaler,
    "Pod": pod_completed,
}


def readiness(obj: Mapping[str, Any] | None) -> Readiness:
    """The readiness of a live object (None: it does not exist). Kinds without a predicate
    are ready once they exist."""
    if obj is None:
        return Readiness(State.WAITING, "not found")
    predicate = PREDICATES.get(str(obj.get("kind")))
    return predicate(obj) if predicate else Readiness(State.READY, "present")


def explain(
    obj: Mapping[str, Any] | None,
    *,
    events: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Why an object is not ready, from its conditions, its pods and recent events.

    Returns short sentences, most telling first: failing conditions, then what keeps its pods
    from running (unschedulable, image pull errors), then the latest warnings.
    """
    if obj is None:
        return ["it does not exist"]
    reasons: list[str] = []
    for cond in _conditions(obj).values():
        if cond.get("status") == "False" or cond.get("reason") == "ProgressDeadlineExceeded":
            reasons.append(
                f"condition {cond.get('type')}={cond.get('status')} "
                f"({cond.get('reason', '')}: {cond.get('message', '')})"
            )
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name")
        for cond in _conditions(pod).values():
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reasons.append(f"pod {name} unschedulable: {cond.get('message', '')}")
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason"):
                reasons.append(
                    f"pod {name} container {container.get('name')}: {waiting['reason']} "
                    f"{waiting.get('message', '')}".rstrip()
                )
            elif "running" in state and not container.get("ready"):
                reasons.append(
                    f"pod {name} container {container.get('name')}: running but not ready "
                    "(its startup or readiness probe has not passed: the models may still be "
                    "loading, or failed to load; see its log)"
                )
    warnings = [e for e in events if e.get("type") == "Warning"][-3:]
    reasons.extend(f"event {e.get('reason')}: {e.get('message', '')}" for e in warnings)
    return reasons or ["no conditions or events say why"]


Fetch = Callable[[ObjectRef], Mapping[str, Any] | None]
Explain = Callable[[ObjectRef, Mapping[str, Any] | None], list[str]]


def wait_until_ready(
    refs: Iterable[ObjectRef],
    *,
    fetch: Fetch,
    explain_why: Explain,
    report: Callable[[str], None],
    timeout_s: float,
    poll_s: float = 2.0,
    heartbeat_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll every object until all are ready.

    Reports a line whenever an object's state changes, and a summary every ``heartbeat_s``
    while nothing changes (a GPU node can take minutes). Raises ReadinessTimeout naming every
    object not ready, with the reasons ``explain_why`` finds, when ``timeout_s`` passes or as
    soon as one object has failed for good.
    """
    pending = list(dict.fromkeys(refs))
    total = len(pending)
    last: dict[ObjectRef, str] = {}
    start = clock()
    deadline = start + timeout_s
    heartbeat = start + heartbeat_s
    while True:
        failed: dict[ObjectRef, Readiness] = {}
        live: dict[ObjectRef, Mapping[str, Any] | None] = {}
        for ref in list(pending):
            live[ref] = fetch(ref)
            now = readiness(live[ref])
            if last.get(ref) != now.message:
                last[ref] = now.message
                report(f"  {ref}: {now.message}")
            if now.ready:
                pending.remove(ref)
            elif now.state is State.FAILED:
                failed[ref] = now
        if not pending:
            report(f"all {total} objects ready")
            return
        now_s = clock()
        if now_s >= heartbeat and not failed:
            heartbeat = now_s + heartbeat_s
            waiting = ", ".join(f"{ref}: {last[ref]}" for ref in pending[:3])
            report(
                f"still waiting after {now_s - start:.0f} s, {total - len(pending)}/{total} "
                f"ready ({waiting})"
            )
        if failed or now_s >= deadline:
            reasons = []
            for ref in pending:
                why = [failed[ref].message] if ref in failed else [last[ref]]
                why += explain_why(ref, live[ref])
                reasons.append(f"{ref}: " + "; ".join(why))
            raise ReadinessTimeout(reasons, timeout_s=timeout_s, gave_up=bool(failed))
        sleep(min(poll_s, max(0.0, deadline - clock())))
