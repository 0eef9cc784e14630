"""The chart's autoscaling evaluated by the real HPA controller, for each engine and metric:
``stackdriverAdapter`` (``queueTime``, ``pendingRequests``, ``gpuDutyCycle``) and
``gkePodMetrics`` (``pendingRequests`` only), whose HPA the chart renders itself, and ``keda``
(the three metrics).

KEDA's operator (which cannot run here) would make the HPA from the ScaledObject:
standins/kube/keda.py builds it as KEDA v2.20.2's source does, from the ScaledObject the server
stored, and the metrics stand-in answers its metric as KEDA's metrics server would, by
evaluating the trigger's PromQL over the series (so the query's selection of this release is
what is driven). Checked for KEDA, then: the ScaledObject is valid against KEDA's CRD and
installs; the HPA it yields scales as designed; its query counts this release only. Not checked:
KEDA's own polling and its Google authentication.

Each engine and metric is one scenario, driven through the load timeline that
tests/chart/autoscaling_cluster.py describes (idle, within tolerance, a step up to
``maxReplicas``, a step down to ``minReplicas``, neighbours never counted); the scenarios run
side by side, and each test reports its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standins.kube.control_plane import ControlPlane
from standins.kube.kubelet import KubeletStandIn
from standins.kube.metrics.server import MetricsApi
from tests.chart.autoscaling_cluster import (
    Outcome,
    check_outcome,
    gpu_pool,
    run_scenarios,
    scenarios_of,
)

pytestmark = pytest.mark.slow

SCENARIOS = scenarios_of("stackdriverAdapter", "gkePodMetrics", "keda")


@pytest.fixture(scope="module")
def accelerator(kubelet: KubeletStandIn) -> Iterator[str]:
    """This module's GPU nodes, removed afterwards."""
    with gpu_pool(kubelet, "a100-hpa") as name:
        yield name


@pytest.fixture(scope="module")
def outcomes(
    helm4: Path,
    control_plane: ControlPlane,
    metrics_api: MetricsApi,
    accelerator: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    """Every scenario of this module, run side by side."""
    return run_scenarios(
        SCENARIOS,
        helm4=helm4,
        control_plane=control_plane,
        metrics_api=metrics_api,
        accelerator=accelerator,
        tmp_path_factory=tmp_path_factory,
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_engine_and_metric_scales_its_release_up_and_down(
    scenario: str, outcomes: dict[str, Outcome], record_property: Callable[[str, object], None]
) -> None:
    check_outcome(scenario, outcomes, record_property)
