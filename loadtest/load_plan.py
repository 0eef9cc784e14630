"""The load shapes of the BERT load test, as data: a list of stages, each a rate held until a
point in time. Pure functions of plain numbers (no Locust here), so they are easy to test.

Every user sends at a constant rate (``constant_throughput``), so the request rate is set by the
number of users: ``users = ceil(qps / user_qps)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

STEP_FRACTIONS: Final = (0.25, 0.5, 0.75, 1.0)
"""The stepped shape's rates as fractions of the target: 50, 100, 150 then 200 QPS by default,
the ramp the original load test used to make the autoscaler add GPU nodes."""


@dataclass(frozen=True)
class Stage:
    """A rate held from the end of the previous stage until ``until_s``."""

    until_s: float
    """Seconds since the start of the test when this stage ends (``math.inf``: never)."""
    qps: float
    """Requests per second during the stage, across all users."""


def stepped_stages(
    *, target_qps: float, step_s: float, fractions: Sequence[float] = STEP_FRACTIONS
) -> tuple[Stage, ...]:
    """Steps up to ``target_qps``, each step lasting ``step_s``; the last step is held until
    the test is stopped (Locust's ``--run-time`` or Ctrl-C)."""
    if target_qps <= 0 or step_s <= 0:
        raise ValueError("target_qps and step_s must be positive")
    stages = [
        Stage(until_s=step_s * (index + 1), qps=target_qps * fraction)
        for index, fraction in enumerate(fractions[:-1])
    ]
    return (*stages, Stage(until_s=math.inf, qps=target_qps * fractions[-1]))


def constant_stages(*, target_qps: float) -> tuple[Stage, ...]:
    """``target_qps`` from the first second until the test is stopped."""
    if target_qps <= 0:
        raise ValueError("target_qps must be positive")
    return (Stage(until_s=math.inf, qps=target_qps),)


def stage_at(stages: Sequence[Stage], run_time_s: float) -> Stage | None:
    """The stage in force ``run_time_s`` seconds into the test; None once the last has ended."""
    for stage in stages:
        if run_time_s < stage.until_s:
            return stage
    return None


def users_for(qps: float, user_qps: float) -> int:
    """Users needed for ``qps`` when each sends ``user_qps`` requests a second (at least 1)."""
    if user_qps <= 0:
        raise ValueError("user_qps must be positive to turn a rate into a number of users")
    return max(1, math.ceil(qps / user_qps - 1e-9))
