"""How long a command may take: one deadline for the whole command, every API request inside it.

``--timeout`` is the deadline of a whole ``deploy``, ``verify``, ``delete`` or ``status``, not
of one step. Each API request waits at most MAX_REQUEST_S and never past the deadline, its
whole answer included (``request_limit``), so a stalled API server costs the time left and no
more. Without ``--timeout``, the deadline comes
from the rendered objects: a Deployment's ``progressDeadlineSeconds`` (which the chart keeps
above its startup probe's budget) plus room to apply and to report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer.errors import DeadlinePassed

MAX_REQUEST_S = 30.0
"""The longest one API request may wait for an answer: a healthy API server answers in
well under a second, and a request that waits longer is stalled."""

KUBERNETES_PROGRESS_DEADLINE_S = 600
"""What Kubernetes gives a Deployment that sets no ``progressDeadlineSeconds``."""
KUBERNETES_GRACE_PERIOD_S = 30
"""What Kubernetes gives a pod that sets no ``terminationGracePeriodSeconds``."""

APPLY_AND_REPORT_S = 120.0
"""Beyond a rollout's own deadline: applying the objects, a LoadBalancer's address, the
Deployment controller noticing a passed deadline, and the report of a failure."""
STATUS_S = 60.0
"""``status`` only reads: a minute is plenty."""


@dataclass
class Deadline:
    """A point in time a command must end by."""

    seconds: float
    """How long from its creation; ``math.inf`` for no deadline (requests stay bounded)."""
    clock: Callable[[], float] = time.monotonic
    """Where the time comes from (tests give their own)."""
    started_at: float | None = None
    """When the command began, on ``clock`` (default: now): the time spent working out how
    long it may take counts too."""
    ends_at: float = field(init=False)

    def __post_init__(self) -> None:
        start = self.clock() if self.started_at is None else self.started_at
        self.ends_at = start + self.seconds

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.ends_at - self.clock())

    def request_timeout(self) -> float:
        """How long the next API request may wait: MAX_REQUEST_S, less near the end.

        Raises DeadlinePassed when no time is left, so nothing is sent that could not be
        answered in time.
        """
        left = self.remaining()
        if left <= 0:
            raise DeadlinePassed(self.seconds)
        return min(MAX_REQUEST_S, left)

    def keeping(self, reserve_s: float) -> float:
        """Seconds left once ``reserve_s`` is kept back (for the report of a failure, or a
        clean-up that must still run), never below zero."""
        return max(0.0, self.remaining() - reserve_s)

    def report_reserve(self) -> float:
        """What a wait keeps back so that a failure can still be explained and written to
        the Application before the deadline: a tenth of the whole, 2 to 10 seconds."""
        return min(10.0, max(2.0, self.seconds / 10)) if math.isfinite(self.seconds) else 10.0


def _pod_templates(objects: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for obj in objects:
        if obj.get("kind") == "Deployment":
            yield ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        elif obj.get("kind") == "Pod":
            yield obj.get("spec") or {}


def rollout_budget_s(objects: Iterable[Mapping[str, Any]]) -> float:
    """The longest a rendered Deployment may take to roll out before Kubernetes fails it:
    its ``progressDeadlineSeconds``; zero without Deployments."""
    return float(
        max(
            (
                int((o.get("spec") or {}).get("progressDeadlineSeconds") or 0)
                or KUBERNETES_PROGRESS_DEADLINE_S
                for o in objects
                if o.get("kind") == "Deployment"
            ),
            default=0,
        )
    )


def default_timeout_s(
    command: str, objects: Iterable[Mapping[str, Any]], *, testers_s: float = 0.0
) -> float:
    """The deadline of ``command`` when ``--timeout`` is not given, from the rendered objects
    (the chart's objects and its test objects); ``verify`` adds ``testers_s`` for each
    tester Pod, which Google's ``run_tester.py`` gives that long each."""
    listed = list(objects)
    if command == "status":
        return STATUS_S
    if command == "delete":
        graces = [spec.get("terminationGracePeriodSeconds") for spec in _pod_templates(listed)]
        grace = max(
            (KUBERNETES_GRACE_PERIOD_S if g is None else int(g) for g in graces),
            default=KUBERNETES_GRACE_PERIOD_S,
        )
        return grace + APPLY_AND_REPORT_S
    deploy = rollout_budget_s(listed) + APPLY_AND_REPORT_S
    if command != "verify":
        return deploy
    return deploy + testers_s * sum(1 for o in listed if o.get("kind") == "Pod")
