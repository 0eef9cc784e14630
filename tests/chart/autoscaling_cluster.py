"""What the tests of the chart's autoscaling under the real HPA controller share
(test_autoscaling_cluster.py): the scenarios, the load that drives them and what
each must see.

The control plane of ``../shared/k8s`` (kube-controller-manager v1.36.2, its HPA controller
evaluating every ``HPA_SYNC_PERIOD_S``) reads the metrics stand-in
(standins/kube/metrics/server.py), which answers as the engine's reader would from series
named as GKE writes them: Managed Prometheus's ``prometheus.googleapis.com/<name>/<kind>`` for
Triton's metrics, GKE's
``kubernetes.io/container/accelerator/duty_cycle`` for the GPU. The chart is installed with
Helm 4; the kubelet stand-in makes its pods Ready on a GPU pool of the test module's own.

For each engine and each metric it accepts (``queueTime``, ``pendingRequests``,
``gpuDutyCycle``; ``gkePodMetrics`` takes ``pendingRequests`` only), one scripted load (the
metric's total over the release's pods, shared by those running) drives the release through:
- idle (load 0): it stays at ``minReplicas`` (never below), the metric read and valid;
- 1.08 x target on one pod: it holds, within the controller's 10 % tolerance;
- a step to 5 x target: it scales up at once (no scale-up window), the first step no larger than
  the chart's scale-up policy allows (double, or two more pods, a period), then to
  ``maxReplicas``, never beyond, reporting ``ScalingLimited``/``TooManyReplicas``;
- a step down to 0: nothing moves within the scale-down stabilization window; then one pod per
  policy period, down to ``minReplicas``.
Meanwhile a second release in the same namespace and a same-named release in another namespace
(both with ``maxReplicas: 2``) carry 5 x target in series of their own: they scale up, and the
first release never counts them.

The behaviour values are the chart's default shape with shorter periods (``TEST_BEHAVIOR``);
docs/autoscaling.md works out the defaults. Each timeline is printed (``-s``) and kept as the
test's ``timeline`` property.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from standins.kube.control_plane import HPA_SYNC_PERIOD_S, ControlPlane, wait_until
from standins.kube.keda import hpa_for
from standins.kube.kubelet import KubeletStandIn
from standins.kube.metrics.series import CLUSTER_NAME, PROJECT_ID
from standins.kube.metrics.server import MetricsApi
from tests.chart.cluster import install
from tests.chart.hpa_observations import (
    Release,
    Replicas,
    Rescale,
    condition_of,
    controller_rescales,
    current_value,
    hold,
    hpa_of,
    last_loaded_read,
    pods_of,
)
from tests.conftest import CHART_DIR, restricted_namespace

ACCELERATOR = "nvidia-a100-80gb"
"""The autoscaling tests' GPU pool: an accelerator no other test registers, so its capacity is
theirs (each test module registers the pool under node names of its own, and removes it)."""
GPU_NODES, GPUS_PER_NODE = 6, 8

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["autoscaling"]
MIN_REPLICAS, MAX_REPLICAS = 1, 4
NEIGHBOUR_MAX_REPLICAS = 2
UP_PERIOD_S, DOWN_WINDOW_S, DOWN_PERIOD_S = 2, 6, 2
"""The test's behaviour periods, in place of the chart's 30 s, 600 s and 300 s."""
TOLERANCE = 0.1
"""kube-controller-manager's ``--horizontal-pod-autoscaler-tolerance`` default."""


def _test_behavior() -> dict[str, Any]:
    """The chart's default behaviour with the test's periods: same policies, same selection."""
    behavior: dict[str, Any] = json.loads(json.dumps(DEFAULTS["behavior"]))
    for policy in behavior["scaleUp"]["policies"]:
        policy["periodSeconds"] = UP_PERIOD_S
    behavior["scaleDown"]["stabilizationWindowSeconds"] = DOWN_WINDOW_S
    for policy in behavior["scaleDown"]["policies"]:
        policy["periodSeconds"] = DOWN_PERIOD_S
    return behavior


TEST_BEHAVIOR = _test_behavior()


@dataclass(frozen=True)
class Signal:
    """A metric the chart offers, as GKE stores it and as the chart's values size it."""

    series: str
    """The Cloud Monitoring metric type GKE writes (what the HPA must end up reading)."""
    target: float
    """The chart's default target, per pod."""


SIGNALS = {
    "queueTime": Signal(
        "prometheus.googleapis.com/nv_inference_queue_duration_us/counter",
        DEFAULTS["queueTime"]["targetMicrosecondsPerSecond"],
    ),
    "pendingRequests": Signal(
        "prometheus.googleapis.com/nv_inference_pending_request_count/gauge",
        DEFAULTS["pendingRequests"]["target"],
    ),
    "gpuDutyCycle": Signal(
        "kubernetes.io/container/accelerator/duty_cycle", DEFAULTS["gpuDutyCycle"]["target"]
    ),
}


ENGINES = {
    "stackdriverAdapter": ("queueTime", "pendingRequests", "gpuDutyCycle"),
    "gkePodMetrics": ("pendingRequests",),
    "keda": ("queueTime", "pendingRequests", "gpuDutyCycle"),
}
"""Each engine and the metrics it accepts (the chart refuses the others: test_autoscaling.py)."""


def scenarios_of(*engines: str) -> list[str]:
    """Each ``ENGINE/METRIC`` pair of ``engines``, the test ids of the scenarios."""
    return [f"{engine}/{metric}" for engine in engines for metric in ENGINES[engine]]


PARALLEL_SCENARIOS = 4
"""Scenarios run at once (each holds up to 8 GPUs of the pool)."""


@contextlib.contextmanager
def gpu_pool(kubelet: KubeletStandIn, prefix: str) -> Iterator[str]:
    """GPU nodes of the autoscaling tests' accelerator, named ``PREFIX-N``, removed afterwards."""
    names = [
        kubelet.add_node(
            f"{prefix}-{index}",
            accelerator=ACCELERATOR,
            gpus=GPUS_PER_NODE,
            pool="a100-pool",
            cpu="96",
            memory="1360Gi",
        )
        for index in range(GPU_NODES)
    ]
    try:
        yield ACCELERATOR
    finally:
        for name in names:
            kubelet.remove_node(name)


def _values_file(folder: Path, scenario: str, accelerator: str, max_replicas: int) -> Path:
    engine, metric = scenario.split("/")
    path = folder / f"{engine}-{metric}-{max_replicas}.yaml"
    autoscaling: dict[str, Any] = {
        "enabled": True,
        "engine": engine,
        "metric": metric,
        "minReplicas": MIN_REPLICAS,
        "maxReplicas": max_replicas,
        "behavior": TEST_BEHAVIOR,
    }
    if engine == "keda":
        autoscaling["keda"] = {"projectId": PROJECT_ID}
    if engine == "keda" or metric == "gpuDutyCycle":
        autoscaling["clusterName"] = CLUSTER_NAME  # the series' cluster: they must still count
    values = {
        "modelRepository": "gs://bucket/models",
        "gpu": {"accelerator": accelerator},
        # GKE's pod path scrapes the pods itself; the others read Managed Prometheus.
        "metrics": {"podMonitoring": {"enabled": engine != "gkePodMetrics"}},
        "autoscaling": autoscaling,
    }
    path.write_text(json.dumps(values))
    return path


def _make_keda_hpa(plane: ControlPlane, release: Release) -> None:
    """What KEDA's operator would do on seeing the release's ScaledObject: create its HPA."""
    api: Any = client.CustomObjectsApi(plane.api_client())
    scaled = api.get_namespaced_custom_object(
        "keda.sh", "v1alpha1", release.namespace, "scaledobjects", release.deployment
    )
    hpa = hpa_for(scaled)
    assert hpa["metadata"]["name"] == release.deployment  # named as the other engines name it
    autoscaling: Any = client.AutoscalingV2Api(plane.api_client())
    autoscaling.create_namespaced_horizontal_pod_autoscaler(release.namespace, hpa)


# -- the scenarios, run side by side ------------------------------------------------------------


@dataclass
class Outcome:
    """What one metric's scenario saw, and the first assertion it failed (None if none)."""

    timeline: str = ""
    neighbours: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


def _scenario(
    scenario: str,
    *,
    helm: Path,
    plane: ControlPlane,
    metrics_api: MetricsApi,
    values: Mapping[int, Path],
    namespaces: tuple[str, str],
) -> Outcome:
    """Install this scenario's three releases, drive ours through the load timeline, and
    report what happened (a failure is kept, not raised: the other scenarios run on)."""
    engine, metric = scenario.split("/")
    signal = SIGNALS[metric]
    ours = Release(namespaces[0], "a")
    neighbours = [Release(namespaces[0], "b"), Release(namespaces[1], "a")]
    outcome = Outcome()
    apps: Any = client.AppsV1Api(plane.api_client())
    replicas = Replicas(apps, ours.namespace, ours.deployment)

    def load(release: Release, multiple: float) -> None:
        metrics_api.store.script(
            signal.series,
            namespace=release.namespace,
            pods=pods_of(plane, release),
            total=multiple * signal.target,
        )

    try:
        for release in (ours, *neighbours):
            maximum = MAX_REPLICAS if release == ours else NEIGHBOUR_MAX_REPLICAS
            install(
                helm, plane, release.namespace, release=release.name, values_files=[values[maximum]]
            )
            if engine == "keda":
                _make_keda_hpa(plane, release)
        for neighbour in neighbours:
            load(neighbour, 5)
        replicas.start = time.monotonic()
        with replicas.watching():
            _drive(plane, ours, replicas, load, signal, metrics_api)
        outcome.neighbours = {
            f"{r.namespace}/{r.name}": apps.read_namespaced_deployment(
                r.deployment, r.namespace
            ).spec.replicas
            for r in neighbours
        }
        # The neighbours' own load scaled them: their series were live all along, and ours
        # never counted them (it held at one replica while they carried 5 x target).
        assert set(outcome.neighbours.values()) == {NEIGHBOUR_MAX_REPLICAS}, outcome.neighbours
    except BaseException as exc:  # pytest.fail raises a BaseException too
        outcome.error = exc
    finally:
        outcome.timeline = replicas.describe()
    return outcome


def run_scenarios(
    scenarios: list[str],
    *,
    helm4: Path,
    control_plane: ControlPlane,
    metrics_api: MetricsApi,
    accelerator: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    """Every scenario, ``PARALLEL_SCENARIOS`` at a time (each in two namespaces of its own),
    so a module costs a few timelines, not one per scenario."""
    folder = tmp_path_factory.mktemp("autoscaling")
    with contextlib.ExitStack() as stack:
        namespaces = {
            scenario: (
                stack.enter_context(restricted_namespace(control_plane)),
                stack.enter_context(restricted_namespace(control_plane)),
            )
            for scenario in scenarios
        }
        with ThreadPoolExecutor(max_workers=PARALLEL_SCENARIOS) as pool:
            futures = {
                scenario: pool.submit(
                    _scenario,
                    scenario,
                    helm=helm4,
                    plane=control_plane,
                    metrics_api=metrics_api,
                    values={
                        maximum: _values_file(folder, scenario, accelerator, maximum)
                        for maximum in (MAX_REPLICAS, NEIGHBOUR_MAX_REPLICAS)
                    },
                    namespaces=namespaces[scenario],
                )
                for scenario in scenarios
            }
            results = {scenario: future.result() for scenario, future in futures.items()}
        for pair in namespaces.values():
            for namespace in pair:
                metrics_api.store.forget(namespace)
    return results


def check_outcome(
    scenario: str, outcomes: dict[str, Outcome], record_property: Callable[[str, object], None]
) -> None:
    """Print and record the scenario's timeline, and raise the first assertion it failed."""
    outcome = outcomes[scenario]
    print(f"\n{scenario}: {outcome.timeline}; neighbours: {outcome.neighbours}")
    record_property("timeline", outcome.timeline)
    if outcome.error is not None:
        raise outcome.error


CLOCK_SLACK_S = 0.05
"""How much later than the scale event it records the controller logs a rescale (microseconds;
this bounds it generously)."""


def _logged_rescales(plane: ControlPlane, ours: Release, replicas: Replicas) -> list[Rescale]:
    """The controller's own record of every step the poll of the Deployment saw: the poll's
    times are late by however long a loaded machine delays it, the log's are those its policies
    count periods on."""
    observed = list(itertools.pairwise(count for _, count in replicas.changes))

    def all_logged() -> list[Rescale] | None:
        logged = controller_rescales(plane.controller_manager_log, ours)
        return logged if len(logged) >= len(observed) else None

    rescales: list[Rescale] = wait_until(
        "the controller logs each rescale", all_logged, timeout_s=10
    )
    assert [(r.before, r.after) for r in rescales] == observed, (rescales, observed)
    return rescales


def _policy_bound(
    rules: Mapping[str, Any],
    earlier: list[Rescale],
    at: float,
    current: int,
    *,
    up: bool,
) -> int:
    """How far the rules let the controller move from ``current`` at ``at`` (the highest count
    going up, the lowest going down), reckoned as its calculateScale{Up,Down}LimitWithBehaviors
    do: each policy from the count at the start of its period, undoing the rescales recorded
    within it; then the most change any policy allows (``Max``) or the least (``Min``)."""
    bounds: list[int] = []
    for policy in rules["policies"]:
        since = at - policy["periodSeconds"] + CLOCK_SLACK_S  # counts no more than it did
        start = current - sum(r.after - r.before for r in earlier if r.at > since)
        step = policy["value"] if policy["type"] == "Pods" else start * policy["value"] / 100
        bounds.append(math.ceil(start + step) if up else math.floor(start - step))
    most_change = max if up else min
    least_change = min if up else max
    select = most_change if rules["selectPolicy"] == "Max" else least_change
    return select(bounds)


def assert_within_policies(
    rescales: list[Rescale], behavior: Mapping[str, Any] = TEST_BEHAVIOR
) -> None:
    """Each rescale stays within the behaviour's policies, on the controller's clock."""
    for index, (at, before, after) in enumerate(rescales):
        up = after > before
        rules = behavior["scaleUp" if up else "scaleDown"]
        bound = _policy_bound(rules, rescales[:index], at, before, up=up)
        assert (after <= bound) if up else (after >= bound), (index, bound, rescales)


def _drive(
    plane: ControlPlane,
    ours: Release,
    replicas: Replicas,
    load: Callable[[Release, float], None],
    signal: Signal,
    metrics_api: MetricsApi,
) -> None:
    # Idle: the metric is read (a valid 0), and the count stays at the minimum.
    load(ours, 0)
    replicas.mark("idle")
    wait_until(
        "the controller reads the idle metric",
        lambda: (
            condition_of(hpa_of(plane, ours), "ScalingActive") == ("True", "ValidMetricFound")
            and current_value(hpa_of(plane, ours)) == 0
        ),
        timeout_s=30,
    )
    hold(replicas, MIN_REPLICAS, 3 * HPA_SYNC_PERIOD_S)

    # Within the tolerance: 8 % over the target on one pod moves nothing.
    load(ours, 1 + 0.8 * TOLERANCE)
    replicas.mark("within tolerance")
    wait_until(
        "the controller reads the load within tolerance",
        lambda: (current_value(hpa_of(plane, ours)) or 0) > signal.target,
        timeout_s=30,
    )
    hold(replicas, MIN_REPLICAS, 4 * HPA_SYNC_PERIOD_S)

    # Step up: at once, the first step bounded by the policy, then the maximum and no more.
    up = replicas.mark("5 x target")
    load(ours, 5)
    wait_until("scaled to maxReplicas", lambda: replicas.current() == MAX_REPLICAS, timeout_s=60)
    hold(replicas, MAX_REPLICAS, 3 * HPA_SYNC_PERIOD_S)
    rises = replicas.between(up, replicas.now())
    first_at, first = rises[1]
    assert first_at - up < 5 * HPA_SYNC_PERIOD_S + 5, replicas.describe()
    # The chart's policies: double, or two more pods, per period, whichever is more.
    assert first <= max(2 * MIN_REPLICAS, MIN_REPLICAS + 2), replicas.describe()
    # Each step within the policies, timed as the controller timed it.
    assert_within_policies(_logged_rescales(plane, ours, replicas))
    assert max(count for _, count in replicas.changes) == MAX_REPLICAS
    # Once the new pods run and report (a saturated GPU reads 100 % at most), the controller
    # wants more than maxReplicas and says it is held there.
    wait_until(
        "ScalingLimited/TooManyReplicas",
        lambda: condition_of(hpa_of(plane, ours), "ScalingLimited") == ("True", "TooManyReplicas"),
        timeout_s=30,
    )
    assert replicas.current() == MAX_REPLICAS

    # Step down: nothing within the stabilization window, then one pod per policy period.
    down = replicas.mark("load 0")
    load(ours, 0)
    wait_until(
        "scaled back to minReplicas",
        lambda: replicas.current() == MIN_REPLICAS,
        timeout_s=DOWN_WINDOW_S + (MAX_REPLICAS - MIN_REPLICAS) * DOWN_PERIOD_S + 30,
    )
    hold(replicas, MIN_REPLICAS, 3 * HPA_SYNC_PERIOD_S)
    falls = replicas.between(down, replicas.now())[1:]
    assert [count for _, count in falls] == list(range(MAX_REPLICAS - 1, MIN_REPLICAS - 1, -1))
    # The window counts from the controller's last recommendation at the high load: its last
    # read of a non-zero metric (the stand-in logs every read).
    last_high = last_loaded_read(metrics_api, ours) - replicas.start
    assert falls[0][0] >= last_high + DOWN_WINDOW_S - 0.2, (last_high, replicas.describe())
    assert falls[0][0] - down < DOWN_WINDOW_S + 10 * HPA_SYNC_PERIOD_S, replicas.describe()
    assert_within_policies(_logged_rescales(plane, ours, replicas))
    assert min(count for _, count in replicas.changes) == MIN_REPLICAS
