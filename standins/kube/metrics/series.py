"""The time series the metrics stand-in's readers (standins/kube/metrics/store.py) read, labelled
as Cloud Monitoring labels them.

Where the values come from: the time series Cloud Monitoring would hold for the pods that run
now. A test scripts, per metric and per set of pods (a namespace and a label selector), the
total across those pods; each running pod among them gets an equal share (as a Service spreads
requests). Counters are scripted as their per-second rate (what every reader takes of them);
rate windows and scrape lag are not modelled. Each share becomes a series labelled as Cloud
Monitoring labels it:
- ``prometheus.googleapis.com/<name>/<kind>`` (Managed Prometheus, resource
  ``prometheus_target``): only for pods a PodMonitoring of their namespace selects, with that
  PodMonitoring's name as ``job`` (prometheus-engine's ``pod_config.go`` sets it so), and the
  ``namespace``, ``cluster``, ``location``, ``project_id`` target labels;
- ``kubernetes.io/container/...`` (GKE's system metrics, resource ``k8s_container``): one series
  per container (per GPU container for ``accelerator/`` metrics; a GPU is busy 100 % at most),
  the pod's labels as ``metadata.user_labels``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROJECT_ID, LOCATION, CLUSTER_NAME = "test-project", "us-central1", "test-cluster"
"""The Cloud Monitoring resource labels of this cluster's series."""

PROMETHEUS_PREFIX = "prometheus.googleapis.com/"
CONTAINER_PREFIX = "kubernetes.io/container/"
GPU_RESOURCE = "nvidia.com/gpu"
DUTY_CYCLE = f"{CONTAINER_PREFIX}accelerator/duty_cycle"
"""GKE's GPU duty cycle, in percent: a container's share of a scripted total is capped at 100."""


@dataclass(frozen=True)
class TimeSeries:
    """One Cloud Monitoring time series at its newest point (aligned as its reader asks)."""

    metric_type: str
    resource_type: str
    resource_labels: Mapping[str, str]
    metric_labels: Mapping[str, str]
    user_labels: Mapping[str, str]
    value: float

    def filter_labels(self) -> dict[str, str]:
        """The labels as a Cloud Monitoring filter (and so an external selector) names them."""
        return {
            "resource.type": self.resource_type,
            **{f"resource.labels.{k}": v for k, v in self.resource_labels.items()},
            **{f"metric.labels.{k}": v for k, v in self.metric_labels.items()},
            **{f"metadata.user_labels.{k}": v for k, v in self.user_labels.items()},
        }

    def answer_labels(self) -> dict[str, str]:
        """The labels the adapter returns with an external value (``getMetricLabels``)."""
        return {
            "resource.type": self.resource_type,
            **{f"resource.labels.{k}": v for k, v in self.resource_labels.items()},
            **{f"metric.labels.{k}": v for k, v in self.metric_labels.items()},
        }

    def promql_labels(self) -> dict[str, str]:
        """The labels as a PromQL query against Cloud Monitoring sees them: resource and metric
        labels by their own names, the resource type as ``monitored_resource``."""
        return {
            "monitored_resource": self.resource_type,
            **self.resource_labels,
            **self.metric_labels,
        }


def promql_name(metric_type: str) -> str:
    """A Cloud Monitoring metric type's PromQL name: Managed Prometheus's own metrics keep
    their Prometheus name; others map the first ``/`` to ``:`` and other specials to ``_``
    (Cloud Monitoring's "Mapping Cloud Monitoring metrics to PromQL")."""
    if metric_type.startswith(PROMETHEUS_PREFIX):
        return metric_type.removeprefix(PROMETHEUS_PREFIX).rsplit("/", 1)[0]
    return re.sub(r"[^a-zA-Z0-9_:]", "_", metric_type.replace("/", ":", 1))


@dataclass
class Scripted:
    """A metric's total over a set of pods, shared evenly by those running."""

    metric_type: str
    namespace: str
    pods: dict[str, str]
    """matchLabels of the pods whose series these are."""
    total: float


def metric_type_of(api_name: str, *, external: bool) -> str:
    """The Cloud Monitoring type an API metric name stands for, as the adapter reads it."""
    if "|" in api_name or external:
        return api_name.replace("|", "/")
    return f"custom.googleapis.com/{api_name}"


def is_running(pod: Mapping[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _gpu_containers(pod: Mapping[str, Any]) -> list[str]:
    return [
        c["name"]
        for c in pod["spec"].get("containers", [])
        if GPU_RESOURCE in (c.get("resources") or {}).get("limits", {})
    ]


def container_ports(pod: Mapping[str, Any]) -> set[int]:
    return {
        int(port["containerPort"])
        for c in pod["spec"].get("containers", [])
        for port in c.get("ports") or []
    }


def prometheus_series(
    metric_type: str, pod: Mapping[str, Any], value: float, job: str
) -> TimeSeries:
    meta = pod["metadata"]
    return TimeSeries(
        metric_type=metric_type,
        resource_type="prometheus_target",
        resource_labels={
            "project_id": PROJECT_ID,
            "location": LOCATION,
            "cluster": CLUSTER_NAME,
            "namespace": meta["namespace"],
            "job": job,
            "instance": f"{meta['name']}:metrics",
        },
        metric_labels={"pod": meta["name"], "container": "triton"},
        user_labels={},
        value=value,
    )


def container_series(metric_type: str, pod: Mapping[str, Any], value: float) -> list[TimeSeries]:
    meta = pod["metadata"]
    containers = (
        _gpu_containers(pod)
        if metric_type.startswith(f"{CONTAINER_PREFIX}accelerator/")
        else [c["name"] for c in pod["spec"].get("containers", [])]
    )
    share = value / max(len(containers), 1)
    return [
        TimeSeries(
            metric_type=metric_type,
            resource_type="k8s_container",
            resource_labels={
                "project_id": PROJECT_ID,
                "location": LOCATION,
                "cluster_name": CLUSTER_NAME,
                "namespace_name": meta["namespace"],
                "pod_name": meta["name"],
                "container_name": name,
            },
            metric_labels={},
            user_labels=dict(meta.get("labels") or {}),
            value=min(share, 100.0) if metric_type == DUTY_CYCLE else share,
        )
        for name in containers
    ]


def pod_key(series: TimeSeries) -> tuple[str, str]:
    """(namespace, pod) of a series, as the adapter's ``metricKey`` reads it."""
    if series.resource_type == "prometheus_target":
        return series.resource_labels["namespace"], series.metric_labels["pod"]
    return series.resource_labels["namespace_name"], series.resource_labels["pod_name"]
