"""The load shape's stages, as pure data.

Cases: the stepped shape's rates and boundaries (50/100/150/200 QPS for a 200 target), the last
step held until the test is stopped, the constant shape, the stage in force at and around each
boundary, users needed for a rate (rounding up, at least one), and bad inputs refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from loadtest.load_plan import Stage, constant_stages, stage_at, stepped_stages, users_for


def test_steps_climb_to_the_target_in_quarters() -> None:
    stages = stepped_stages(target_qps=200, step_s=60)
    assert stages == (
        Stage(until_s=60, qps=50),
        Stage(until_s=120, qps=100),
        Stage(until_s=180, qps=150),
        Stage(until_s=math.inf, qps=200),
    )


@pytest.mark.parametrize(
    ("run_time_s", "qps"),
    [(0, 50), (59.9, 50), (60, 100), (119.99, 100), (120, 150), (180, 200), (86_400, 200)],
)
def test_stage_in_force_at_each_moment(run_time_s: float, qps: float) -> None:
    stage = stage_at(stepped_stages(target_qps=200, step_s=60), run_time_s)
    assert stage is not None
    assert stage.qps == qps


def test_constant_shape_holds_the_target_from_the_start() -> None:
    stages = constant_stages(target_qps=80)
    assert [stage_at(stages, t) for t in (0, 1, 3600)] == [Stage(until_s=math.inf, qps=80)] * 3


def test_a_finite_plan_ends() -> None:
    stages = (Stage(until_s=10, qps=5), Stage(until_s=20, qps=10))
    assert stage_at(stages, 19.9) == Stage(until_s=20, qps=10)
    assert stage_at(stages, 20) is None


def test_custom_fractions() -> None:
    stages = stepped_stages(target_qps=100, step_s=5, fractions=(0.1, 1.0))
    assert stages == (Stage(until_s=5, qps=10), Stage(until_s=math.inf, qps=100))


@pytest.mark.parametrize(
    ("qps", "user_qps", "users"),
    [(200, 1, 200), (200, 2, 100), (150, 4, 38), (0.5, 1, 1), (10, 0.5, 20)],
)
def test_users_for_a_rate(qps: float, user_qps: float, users: int) -> None:
    assert users_for(qps, user_qps) == users


@pytest.mark.parametrize(
    "make",
    [
        lambda: stepped_stages(target_qps=0, step_s=60),
        lambda: stepped_stages(target_qps=200, step_s=0),
        lambda: constant_stages(target_qps=-1),
        lambda: users_for(100, 0),
    ],
)
def test_bad_numbers_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        make()
