"""Readiness predicates and the wait loop (a fake clock: no real waiting).

Cases:
- Deployment, kubectl's rollout rule: a generation not yet observed, replicas not yet
  updated, old replicas pending termination, updated ones not yet available, done, and a
  passed progress deadline (a failure, not a wait);
- Service: ClusterIP at once, LoadBalancer once it has an IP or hostname;
- HPA present; a tester Pod succeeded, failed, pending; unknown kinds ready when present;
  a missing object waits;
- explain: failing conditions, unschedulable pods, waiting containers, containers running
  but not ready, warning events;
- the loop: one progress line per change, a heartbeat while nothing changes, done when all
  are ready, a timeout naming every object still waiting with its reasons, an early stop
  when one object failed for good.
"""

from __future__ import annotations

from typing import Any

import pytest

from deployer import readiness
from deployer.errors import ReadinessTimeout
from deployer.objects import ObjectRef
from deployer.readiness import State


def deployment(generation: int = 2, wanted: int = 2, **status: Any) -> dict[str, Any]:
    """A Deployment wanting ``wanted`` replicas, with ``status`` fields as given."""
    return {
        "kind": "Deployment",
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": wanted},
        "status": {"observedGeneration": 2, **status},
    }


@pytest.mark.parametrize(
    ("obj", "state", "message"),
    [
        (deployment(generation=3), State.WAITING, "observe the new spec"),
        (deployment(updatedReplicas=1), State.WAITING, "1 of 2 new replicas updated"),
        (
            deployment(updatedReplicas=2, replicas=3),
            State.WAITING,
            "1 old replicas pending termination",
        ),
        (
            deployment(updatedReplicas=2, availableReplicas=1, replicas=2),
            State.WAITING,
            "1/2 replicas available",
        ),
        (
            deployment(updatedReplicas=2, availableReplicas=2, replicas=2),
            State.READY,
            "2/2 replicas available",
        ),
        (
            deployment(
                conditions=[
                    {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "m"}
                ]
            ),
            State.FAILED,
            "exceeded its progress deadline: m",
        ),
    ],
)
def test_deployment_rollout_rule(obj: dict[str, Any], state: State, message: str) -> None:
    result = readiness.readiness(obj)
    assert result.state is state
    assert message in result.message


def test_services() -> None:
    cluster_ip = {"kind": "Service", "spec": {"type": "ClusterIP"}}
    assert readiness.readiness(cluster_ip).ready
    lb: dict[str, Any] = {"kind": "Service", "spec": {"type": "LoadBalancer"}}
    assert readiness.readiness(lb).message == "waiting for a load balancer address"
    lb["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
    assert readiness.readiness(lb).message == "address lb.example.com"


def test_other_kinds() -> None:
    assert readiness.readiness({"kind": "HorizontalPodAutoscaler"}).ready
    assert readiness.readiness({"kind": "ConfigMap"}).ready
    assert readiness.readiness(None).message == "not found"
    pod: dict[str, Any] = {"kind": "Pod", "status": {"phase": "Running"}}
    assert readiness.readiness(pod).state is State.WAITING
    pod["status"] = {"phase": "Succeeded"}
    assert readiness.readiness(pod).ready
    pod["status"] = {"phase": "Failed"}
    assert readiness.readiness(pod).state is State.FAILED


def test_explain_gathers_conditions_pods_and_events() -> None:
    obj = deployment(conditions=[{"type": "Available", "status": "False", "reason": "R"}])
    pods = [
        {
            "metadata": {"name": "p"},
            "status": {
                "conditions": [{"type": "PodScheduled", "status": "False", "message": "no gpu"}],
                "containerStatuses": [
                    {"name": "triton", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
            },
        },
        {
            "metadata": {"name": "q"},
            "status": {
                "containerStatuses": [
                    {"name": "triton", "ready": False, "state": {"running": {}}},
                    {"name": "sidecar", "ready": True, "state": {"running": {}}},
                ],
            },
        },
    ]
    events = [
        {"type": "Normal", "reason": "Scheduled", "message": "fine"},
        {"type": "Warning", "reason": "BackOff", "message": "pulling"},
    ]
    reasons = readiness.explain(obj, events=events, pods=pods)
    assert reasons == [
        "condition Available=False (R: )",
        "pod p unschedulable: no gpu",
        "pod p container triton: ImagePullBackOff",
        "pod q container triton: running but not ready (its startup or readiness probe has "
        "not passed: the models may still be loading, or failed to load; see its log)",
        "event BackOff: pulling",
    ]
    assert readiness.explain(None) == ["it does not exist"]
    assert readiness.explain({"kind": "X"}) == ["no conditions or events say why"]


class FakeTime:
    """A clock that moves only when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def test_the_loop_reports_changes_and_finishes() -> None:
    ref = ObjectRef("apps/v1", "Deployment", "d")
    time = FakeTime()
    states = iter(
        [
            deployment(updatedReplicas=2, availableReplicas=0, replicas=2),
            deployment(updatedReplicas=2, availableReplicas=0, replicas=2),
            deployment(updatedReplicas=2, availableReplicas=1, replicas=2),
            deployment(updatedReplicas=2, availableReplicas=2, replicas=2),
        ]
    )
    lines: list[str] = []
    readiness.wait_until_ready(
        [ref],
        fetch=lambda _: next(states),
        explain_why=lambda *_: [],
        report=lines.append,
        timeout_s=60,
        poll_s=1,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert lines == [
        "  Deployment/d: 0/2 replicas available",
        "  Deployment/d: 1/2 replicas available",
        "  Deployment/d: 2/2 replicas available",
        "all 1 objects ready",
    ]
    assert time.now == 3


def test_the_loop_times_out_naming_what_waits_and_why() -> None:
    waiting = ObjectRef("v1", "Service", "lb")
    ready = ObjectRef("v1", "ConfigMap", "c")
    time = FakeTime()
    lines: list[str] = []
    live: dict[ObjectRef, dict[str, Any]] = {
        waiting: {"kind": "Service", "spec": {"type": "LoadBalancer"}},
        ready: {"kind": "ConfigMap"},
    }
    with pytest.raises(ReadinessTimeout) as caught:
        readiness.wait_until_ready(
            [waiting, ready],
            fetch=live.__getitem__,
            explain_why=lambda ref, _: [f"quota exhausted for {ref.name}"],
            report=lines.append,
            timeout_s=10,
            poll_s=3,
            heartbeat_s=5,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert caught.value.reasons == [
        "Service/lb: waiting for a load balancer address; quota exhausted for lb"
    ]
    assert lines[-1] == (
        "still waiting after 6 s, 1/2 ready (Service/lb: waiting for a load balancer address)"
    )
    assert not caught.value.gave_up
    assert "not ready after 10 s" in str(caught.value)
    assert time.now == 10


def test_the_loop_stops_early_on_a_failure() -> None:
    ref = ObjectRef("v1", "Pod", "tester")
    time = FakeTime()
    with pytest.raises(ReadinessTimeout) as caught:
        readiness.wait_until_ready(
            [ref],
            fetch=lambda _: {"kind": "Pod", "status": {"phase": "Failed", "reason": "Error"}},
            explain_why=lambda *_: [],
            report=lambda _: None,
            timeout_s=600,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert caught.value.gave_up
    assert caught.value.reasons == ["Pod/tester: failed (Error)"]
    assert time.now == 0
