"""How the autoscaling tests judge the real HPA controller's steps (tests/chart/
autoscaling_cluster.py): its own log gives each rescale and when it made it, and each step must
keep within the behaviour's policies as the controller reckons them. The timelines here are
ones the controller made, and ones it must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.autoscaling_cluster import DOWN_PERIOD_S, UP_PERIOD_S, assert_within_policies
from tests.chart.hpa_observations import Release, Rescale, controller_rescales


def test_gpu_duty_cycle_steps_one_pod_a_sync_within_the_doubling_policy() -> None:
    # 1 -> 2 -> 3 -> 4, a second apart: by the third step the first has left the 2 s period,
    # so the period started at 2 and doubling allows 4.
    assert_within_policies([Rescale(100.0, 1, 2), Rescale(101.02, 2, 3), Rescale(102.04, 3, 4)])


def test_a_step_beyond_the_period_start_allowance_is_caught() -> None:
    # 1 -> 3 takes the period's whole allowance (two more pods, or double of 1); 3 -> 4 a
    # second later exceeds it.
    with pytest.raises(AssertionError):
        assert_within_policies([Rescale(100.0, 1, 3), Rescale(101.0, 3, 4)])
    assert_within_policies([Rescale(100.0, 1, 3), Rescale(100.0 + UP_PERIOD_S, 3, 4)])


def test_scale_down_is_one_pod_a_period_on_the_controller_clock() -> None:
    assert_within_policies([Rescale(200.0, 4, 3), Rescale(200.0 + DOWN_PERIOD_S, 3, 2)])
    with pytest.raises(AssertionError):
        assert_within_policies([Rescale(200.0, 4, 3), Rescale(200.0 + DOWN_PERIOD_S - 0.4, 3, 2)])
    with pytest.raises(AssertionError):
        assert_within_policies([Rescale(200.0, 4, 2)])


def test_the_controller_log_gives_this_release_rescales_only(tmp_path: Path) -> None:
    log = tmp_path / "controller-manager.log"
    line = (
        'I1207 17:09:{second}     1 horizontal.go:881] "Successfully rescaled" '
        'logger="horizontal-pod-autoscaler-controller" HPA="{namespace}/a-triton-inference-server" '
        'currentReplicas={before} desiredReplicas={after} reason="All metrics below target"'
    )
    log.write_text(
        "\n".join(
            [
                line.format(second="20.250000", namespace="ns-1", before=4, after=3),
                line.format(second="21.000000", namespace="ns-2", before=2, after=1),
                'I1207 17:09:21.500000     1 horizontal.go:900] "Decided not to scale"',
                line.format(second="22.750000", namespace="ns-1", before=3, after=2),
            ]
        )
    )
    rescales = controller_rescales(log, Release("ns-1", "a"))
    assert [(r.before, r.after) for r in rescales] == [(4, 3), (3, 2)]
    assert rescales[1].at - rescales[0].at == pytest.approx(2.5)
