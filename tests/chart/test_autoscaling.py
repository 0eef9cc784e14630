"""Autoscaling, standby capacity and metrics (hpa.yaml, standby.yaml, podmonitoring.yaml,
servicemonitor.yaml, dashboard-configmap.yaml).

Cases: the HPA targets this release's Deployment, which then has no fixed replica count; each
metric (queue time and pending requests as Pods metrics from Managed Prometheus, GPU duty cycle
as an External metric whose selector names this release's namespace, container and pod label);
two releases' duty-cycle selectors never overlap; behaviour defaults scale up fast and down
slowly, and can be replaced; the PodDisruptionBudget follows maxReplicas; standby placeholders
request the same GPU, CPU and memory on the same nodes at a lower, non-preempting priority, and
no Triton Service selects them; PodMonitoring and ServiceMonitor scrape port `metrics` of this
release's pods; the Grafana dashboard is valid JSON that plots the metrics the HPA uses; every
description of `nv_inference_pending_request_count` says what Triton documents it to count
(requests waiting to start execution), never requests in flight.

Engines (``autoscaling.engine``), for every metric: rendered and valid (custom resources against
KEDA's v2.20.2 CRDs and our transcription of GKE's AutoscalingMetric, see standins/kube/crds),
or refused at render with what to set instead: a counter (queueTime) and GKE's system metric
(gpuDutyCycle) on GKE's gauges-only pod path, KEDA without a project, Triton's metrics
without Managed Prometheus scraping where the engine reads them from there, a rate() window
shorter than two scrapes. gkePodMetrics: the HPA names this release's AutoscalingMetric and
gauge, which reads the Deployment's pods on their metrics port. keda: no HPA of the chart's
own; a ScaledObject naming the HPA KEDA makes like the other engines', with the chart's
behaviour and bounds, whose PromQL selects this release's series.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from standins.kube.control_plane import GKE_CRDS_DIR
from tests.chart.helpers import HelmFailedError, field, only, render_chart
from tests.conftest import ROOT

REPO = {"modelRepository": "gs://bucket/models"}
SCRAPED = {"metrics": {"podMonitoring": {"enabled": True}}}


def autoscaled(metric: str, **extra: Any) -> dict[str, Any]:
    return {**REPO, **SCRAPED, "autoscaling": {"enabled": True, "metric": metric, **extra}}


ENGINE_OBJECTS = {
    "stackdriverAdapter": {"HorizontalPodAutoscaler"},
    "gkePodMetrics": {"HorizontalPodAutoscaler", "AutoscalingMetric"},
    "keda": {"ScaledObject", "TriggerAuthentication"},
}
"""The autoscaling objects each engine renders."""
AUTOSCALING_KINDS = set().union(*ENGINE_OBJECTS.values())
ENGINE_VALUES = {"keda": {"keda": {"projectId": "my-project"}}}
REFUSED = {
    ("gkePodMetrics", "queueTime"): "gkePodMetrics has GKE read gauges only, and queueTime is "
    "the rate of a counter (nv_inference_queue_duration_us): use autoscaling.metric="
    "pendingRequests, or autoscaling.engine=stackdriverAdapter or keda",
    ("gkePodMetrics", "gpuDutyCycle"): "gpuDutyCycle is GKE's system metric in Cloud Monitoring:"
    " use autoscaling.metric=pendingRequests, or autoscaling.engine=stackdriverAdapter or keda",
}
"""(engine, metric) pairs the chart refuses, with (part of) its message."""


class TestHorizontalPodAutoscaler:
    TEMPLATE = "templates/hpa.yaml"

    def test_targets_this_release_deployment(self, helm: Path) -> None:
        manifests = render_chart(helm, autoscaled("queueTime"), release="blue")
        hpa = only(manifests, "HorizontalPodAutoscaler")
        deployment = only(manifests, "Deployment")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        assert "replicas" not in deployment["spec"]
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)

    @pytest.mark.parametrize(
        ("metric", "name", "target"),
        [
            (
                "queueTime",
                "prometheus.googleapis.com|nv_inference_queue_duration_us|counter",
                "500000",
            ),
            (
                "pendingRequests",
                "prometheus.googleapis.com|nv_inference_pending_request_count|gauge",
                "8",
            ),
        ],
    )
    def test_triton_metrics_are_pods_metrics(
        self, helm: Path, metric: str, name: str, target: str
    ) -> None:
        hpa = only(
            render_chart(helm, autoscaled(metric), show_only=[self.TEMPLATE]),
            "HorizontalPodAutoscaler",
        )
        (spec,) = hpa["spec"]["metrics"]
        assert spec["type"] == "Pods"
        assert spec["pods"]["metric"]["name"] == name
        assert spec["pods"]["target"] == {"type": "AverageValue", "averageValue": target}

    def test_gpu_duty_cycle_selects_only_this_release(self, helm: Path) -> None:
        values = autoscaled("gpuDutyCycle", gpuDutyCycle={"target": 70}, clusterName="c1")
        manifests = render_chart(helm, values, release="blue", namespace="ml")
        (spec,) = only(manifests, "HorizontalPodAutoscaler")["spec"]["metrics"]
        assert spec["type"] == "External"
        assert (
            spec["external"]["metric"]["name"] == "kubernetes.io|container|accelerator|duty_cycle"
        )
        selector = spec["external"]["metric"]["selector"]["matchLabels"]
        assert selector == {
            "resource.labels.namespace_name": "ml",
            "resource.labels.container_name": "triton",
            "metadata.user_labels.triton_release": "blue",
            "resource.labels.cluster_name": "c1",
        }
        assert spec["external"]["target"] == {"type": "AverageValue", "averageValue": "70"}
        # The label the selector reads is on the Triton pods.
        labels = only(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert labels["triton_release"] == "blue"

    def test_two_releases_duty_cycle_selectors_do_not_overlap(self, helm: Path) -> None:
        selectors = [
            field(
                only(
                    render_chart(
                        helm, autoscaled("gpuDutyCycle"), release=r, show_only=[self.TEMPLATE]
                    ),
                    "HorizontalPodAutoscaler",
                ),
                "spec.metrics[0].external.metric.selector.matchLabels",
            )
            for r in ("blue", "green")
        ]
        shared_keys = set(selectors[0]) & set(selectors[1])
        assert any(selectors[0][k] != selectors[1][k] for k in shared_keys)

    def test_behavior_defaults_scale_up_fast_and_down_slowly(self, helm: Path) -> None:
        behavior = only(
            render_chart(helm, autoscaled("queueTime"), show_only=[self.TEMPLATE]),
            "HorizontalPodAutoscaler",
        )["spec"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
        assert max(p["value"] for p in behavior["scaleUp"]["policies"] if p["type"] == "Pods") >= 2

    def test_behavior_can_be_replaced(self, helm: Path) -> None:
        scale_down = {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        }
        values = autoscaled("queueTime", behavior={"scaleDown": scale_down})
        hpa = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "HorizontalPodAutoscaler")
        assert hpa["spec"]["behavior"]["scaleDown"] == scale_down

    def test_pdb_follows_max_replicas(self, helm: Path) -> None:
        manifests = render_chart(helm, autoscaled("queueTime", minReplicas=1, maxReplicas=3))
        assert only(manifests, "PodDisruptionBudget")


class TestEngines:
    @pytest.mark.parametrize("metric", ["queueTime", "pendingRequests", "gpuDutyCycle"])
    @pytest.mark.parametrize("engine", sorted(ENGINE_OBJECTS))
    def test_each_engine_renders_each_metric_or_says_why_not(
        self, helm: Path, engine: str, metric: str
    ) -> None:
        values = autoscaled(metric, engine=engine, **ENGINE_VALUES.get(engine, {}))
        if (engine, metric) in REFUSED:
            with pytest.raises(HelmFailedError) as refused:
                render_chart(helm, values)
            assert REFUSED[(engine, metric)] in " ".join(refused.value.stderr.split())
            return
        manifests = render_chart(helm, values)  # validated, custom resources included
        kinds = {m["kind"] for m in manifests} & AUTOSCALING_KINDS
        assert kinds == ENGINE_OBJECTS[engine]
        assert "replicas" not in only(manifests, "Deployment")["spec"]

    def test_gke_pod_metrics_reads_this_release_gauge(self, helm: Path) -> None:
        # No PodMonitoring: GKE scrapes the pods itself.
        autoscaling = {"enabled": True, "engine": "gkePodMetrics", "metric": "pendingRequests"}
        values = {**REPO, "autoscaling": autoscaling}
        manifests = render_chart(helm, values, release="blue")
        assert not [m for m in manifests if m["kind"] == "PodMonitoring"]
        metric = only(manifests, "AutoscalingMetric")
        deployment = only(manifests, "Deployment")
        (spec,) = only(manifests, "HorizontalPodAutoscaler")["spec"]["metrics"]
        assert spec["type"] == "Pods"
        prefix, name, gauge = spec["pods"]["metric"]["name"].split("|")
        assert (prefix, name) == ("autoscaling.gke.io", metric["metadata"]["name"])
        (source,) = metric["spec"]["metrics"]
        (container,) = source["pod"]["containers"]
        (entry,) = container["metrics"]
        assert entry["gauge"] == {
            "name": gauge,
            "prometheusMetricName": "nv_inference_pending_request_count",
        }
        assert spec["pods"]["target"] == {"type": "AverageValue", "averageValue": "8"}
        # It reads the Deployment's pods (and no other release's) on Triton's metrics port.
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert source["pod"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert source["pod"]["selector"]["matchLabels"] == {"triton_release": "blue"}
        # GKE takes label names of letters, digits, '-' and '_' only (which its
        # documentation states and our transcribed CRD cannot check).
        assert all(
            re.fullmatch("[A-Za-z0-9_-]+", k) for k in source["pod"]["selector"]["matchLabels"]
        )
        ports = field(deployment, "spec.template.spec.containers[name=triton].ports")
        assert {"port": container["endpoint"]["port"], "path": "/metrics"} == {
            "port": next(p["containerPort"] for p in ports if p["name"] == "metrics"),
            "path": container["endpoint"]["path"],
        }

    @pytest.mark.parametrize("metric", ["queueTime", "pendingRequests", "gpuDutyCycle"])
    def test_keda_scaled_object_queries_this_release(self, helm: Path, metric: str) -> None:
        behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
        values = autoscaled(
            metric,
            engine="keda",
            minReplicas=2,
            maxReplicas=6,
            clusterName="c1",
            behavior=behavior,
            keda={"projectId": "my-project"},
        )
        manifests = render_chart(helm, values, release="blue", namespace="ml")
        assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]
        scaled = only(manifests, "ScaledObject")
        deployment = only(manifests, "Deployment")
        spec = scaled["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
        hpa_config = spec["advanced"]["horizontalPodAutoscalerConfig"]
        assert hpa_config["name"] == deployment["metadata"]["name"]
        assert hpa_config["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["serverAddress"] == (
            "https://monitoring.googleapis.com/v1/projects/my-project/location/global/prometheus"
        )
        authentication = only(manifests, "TriggerAuthentication")
        assert trigger["authenticationRef"] == {"name": authentication["metadata"]["name"]}
        assert authentication["spec"] == {"podIdentity": {"provider": "gcp"}}
        query, target = trigger["metadata"]["query"], trigger["metadata"]["threshold"]
        assert query.startswith("sum(")
        if metric == "gpuDutyCycle":
            assert target == "60"
            assert 'namespace_name="ml",container_name="triton"' in query
            assert 'pod_name=~"blue-triton-inference-server-[a-z0-9]+-[a-z0-9]+"' in query
            assert 'cluster_name="c1"' in query
        else:
            # Managed Prometheus labels Triton's series with the PodMonitoring's name as `job`.
            monitoring = only(manifests, "PodMonitoring")["metadata"]["name"]
            assert f'{{namespace="ml",job="{monitoring}",cluster="c1"}}' in query
            assert target == {"queueTime": "500000", "pendingRequests": "8"}[metric]
            assert ("rate(" in query) == (metric == "queueTime")


class TestStandby:
    TEMPLATE = "templates/standby.yaml"

    def test_placeholders_hold_a_triton_pods_room_below_its_priority(self, helm: Path) -> None:
        values = {**REPO, "imagePullSecrets": ["ngc"], "standby": {"enabled": True, "replicas": 2}}
        manifests = render_chart(helm, values)
        priority = only(manifests, "PriorityClass")
        assert priority["value"] < 0
        assert priority["preemptionPolicy"] == "Never"
        assert priority["globalDefault"] is False
        assert priority["metadata"]["name"].startswith("serving-")
        standby = only(manifests, "Deployment", "-standby")
        triton = only(manifests, "Deployment", "-server")
        assert standby["spec"]["replicas"] == 2
        pod, triton_pod = standby["spec"]["template"]["spec"], triton["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == priority["metadata"]["name"]
        assert pod["nodeSelector"] == triton_pod["nodeSelector"]
        assert pod["containers"][0]["resources"] == triton_pod["containers"][0]["resources"]
        assert "priorityClassName" not in triton_pod  # default priority 0, above the placeholders
        # The warm node already holds Triton's image when Triton lands there.
        prepull = pod["initContainers"][0]
        assert prepull["image"] == triton_pod["containers"][0]["image"]
        assert prepull["command"] == ["true"]
        assert pod["imagePullSecrets"] == triton_pod["imagePullSecrets"] == [{"name": "ngc"}]

    def test_existing_priority_class(self, helm: Path) -> None:
        values = {**REPO, "standby": {"enabled": True, "existingPriorityClass": "gpu-standby"}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        assert not [m for m in manifests if m["kind"] == "PriorityClass"]
        pod = only(manifests, "Deployment", "-standby")["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == "gpu-standby"

    def test_no_triton_selector_matches_placeholders(self, helm: Path) -> None:
        values = {**REPO, **SCRAPED, "replicaCount": 2, "standby": {"enabled": True}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        placeholder_labels = only(manifests, "Deployment", "-standby")["spec"]["template"][
            "metadata"
        ]["labels"]
        for manifest in manifests:
            selector = field(manifest, "spec.selector.matchLabels") or (
                field(manifest, "spec.selector") if manifest["kind"] == "Service" else None
            )
            if selector and not manifest["metadata"]["name"].endswith("-standby"):
                assert not selector.items() <= placeholder_labels.items(), manifest["kind"]


class TestMetrics:
    def test_pod_monitoring_scrapes_this_release(self, helm: Path) -> None:
        manifests = render_chart(helm, {**REPO, **SCRAPED})
        monitoring = only(manifests, "PodMonitoring")
        assert (
            monitoring["spec"]["selector"]["matchLabels"]
            == only(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
        )
        assert monitoring["spec"]["endpoints"] == [
            {"port": "metrics", "path": "/metrics", "interval": "15s"}
        ]

    def test_service_monitor(self, helm: Path) -> None:
        values = {
            **REPO,
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}
            },
        }
        monitor = only(render_chart(helm, values), "ServiceMonitor")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert field(monitor, "spec.endpoints[0].port") == "metrics"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["serving"]}

    def test_grafana_dashboard_plots_the_scaling_signals(self, helm: Path) -> None:
        values = {**REPO, "metrics": {"grafanaDashboard": {"enabled": True}}}
        config_map = only(render_chart(helm, values), "ConfigMap", "-dashboard")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = config_map["data"].values()
        dashboard = json.loads(text)
        queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        for metric in (
            "nv_inference_request_success",
            "nv_inference_queue_duration_us",
            "nv_inference_compute_infer_duration_us",
            "nv_gpu_utilization",
            "nv_inference_exec_count",
            "nv_inference_pending_request_count",
        ):
            assert metric in queries


def test_the_autoscaling_metric_schema_is_marked_as_our_transcription() -> None:
    """Google publishes no CRD for AutoscalingMetric: the one the tests validate against is
    ours, written from GKE's documentation, and says so where a reader meets it."""
    crds = GKE_CRDS_DIR
    header = (crds / "autoscaling.gke.io_autoscalingmetrics.yaml").read_text().splitlines()[0]
    assert header.startswith("# OUR TRANSCRIPTION, not a Google file")
    readme = (crds / "README.md").read_text()
    assert "AutoscalingMetric (autoscaling.gke.io/v1beta1) | **our transcription**" in readme


PENDING_DESCRIBED_IN = (
    "chart/templates/hpa.yaml",
    "chart/values.yaml",
    "chart/README.md",
    "docs/autoscaling.md",
    "schema.yaml",
)
"""Every file that tells a user what the pendingRequests signal counts."""


@pytest.mark.parametrize("path", PENDING_DESCRIBED_IN)
def test_pending_requests_described_as_waiting_to_start_execution(path: str) -> None:
    """Triton's `nv_inference_pending_request_count` counts requests not yet picked up by a
    model instance (tests/chart/test_metrics_prometheus.py measures it): a target sized as if
    it counted executing requests too scales late."""
    lines = (ROOT / path).read_text().splitlines()
    mentions = [
        i
        for i, line in enumerate(lines)
        if re.search("pending_request_count|pendingRequests", line)
    ]
    assert mentions, f"{path} no longer mentions the pendingRequests signal"
    near = "\n".join("\n".join(lines[max(i - 1, 0) : i + 6]) for i in mentions).lower()
    for wrong in ("in flight", "in-flight", "not yet answered", "not yet finished"):
        assert wrong not in near, f"{path} describes pending requests as {wrong!r}"
    assert "waiting to start execution" in " ".join(near.replace("#", " ").split())


def test_a_0_1_values_file_keeps_its_cluster_name(helm: Path) -> None:
    """0.1.0 named the duty cycle's cluster ``autoscaling.gpuDutyCycle.clusterName``: a values
    file that says so upgrades unchanged, the selector narrowed to that cluster, and the new
    key wins where both are set."""
    autoscaling = {
        "enabled": True,
        "metric": "gpuDutyCycle",
        "gpuDutyCycle": {"target": 70, "clusterName": "triton"},
    }
    old = {**REPO, "autoscaling": autoscaling}
    (hpa,) = render_chart(helm, old, show_only=["templates/hpa.yaml"])
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
    assert selector["resource.labels.cluster_name"] == "triton"
    both = {**REPO, "autoscaling": {**autoscaling, "clusterName": "serving"}}
    (hpa,) = render_chart(helm, both, show_only=["templates/hpa.yaml"])
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
    assert selector["resource.labels.cluster_name"] == "serving"
