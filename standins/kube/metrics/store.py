"""The three ways GKE's autoscaling reads the scripted series (standins/kube/metrics/series.py),
each as its own source does; the metrics stand-in (standins/kube/metrics/server.py) answers
through them.

The readers:
- :meth:`MetricsStore.pods_metric` and :meth:`MetricsStore.external_metric`: the Custom Metrics
  Stackdriver Adapter (GoogleCloudPlatform/k8s-stackdriver, custom-metrics-stackdriver-adapter
  v0.16.9: ``provider.go``, ``query_builder.go``, ``response_translator.go``). Pods metrics: the
  pods of the request's namespace and selector, each the sum of its series (Triton exports one
  per model), pods without series left out; a metric selector may name only ``metric.labels.*``
  (or ``reducer``). External metrics: project-wide (the path's namespace filters nothing), the
  selector is the filter (``metric.labels.``, ``resource.labels.``, ``metadata.system_labels.``,
  ``metadata.user_labels.``, ``resource.type``), one value per series.
- :meth:`MetricsStore.gke_pod_metric`: GKE's managed adapter for an AutoscalingMetric, metric
  ``autoscaling.gke.io|<AutoscalingMetric>|<gauge>``: the gauge GKE scrapes from each pod the
  AutoscalingMetric selects, on the port it names (no PodMonitoring involved); a pod that does
  not expose that port gives nothing.
- :meth:`MetricsStore.keda_metric`: KEDA's metrics server for a ScaledObject's ``prometheus``
  trigger (kedacore/keda v2.20.2: metric ``s<index>-prometheus``, selected by the label
  ``scaledobject.keda.sh/name``): the trigger's PromQL evaluated over the series, for the
  subset of PromQL the chart writes (``sum(rate(name{matchers}[window]))``, ``sum(name{...})``,
  with ``=``, ``!=``, ``=~``, ``!~``: standins/kube/metrics/promql.py); anything else is
  refused, not guessed.
"""

from __future__ import annotations

import collections
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from standins.kube.metrics.errors import MetricsApiError, go_quoted, not_found
from standins.kube.metrics.promql import PromQuery
from standins.kube.metrics.selectors import check_keys, parse_selector, selector_selects, selects
from standins.kube.metrics.series import (
    PROMETHEUS_PREFIX,
    Scripted,
    TimeSeries,
    container_ports,
    container_series,
    is_running,
    metric_type_of,
    pod_key,
    prometheus_series,
    promql_name,
)

GKE_METRIC_PREFIX = "autoscaling.gke.io|"
KEDA_OWNER_LABEL = "scaledobject.keda.sh/name"

CUSTOM_SELECTOR_PREFIXES = ("metric.labels.",)
CUSTOM_SELECTOR_NAMES = ("reducer",)
EXTERNAL_SELECTOR_PREFIXES = (
    "metric.labels.",
    "resource.labels.",
    "metadata.system_labels.",
    "metadata.user_labels.",
)
EXTERNAL_SELECTOR_NAMES = ("resource.type", "reducer")


@dataclass
class MetricsStore:
    """The scripted series and the ways GKE's autoscalers read them (no HTTP here)."""

    api_client: client.ApiClient
    scripts: list[Scripted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(
        self, metric_type: str, *, namespace: str, pods: Mapping[str, str], total: float
    ) -> None:
        """From now on, the pods of ``namespace`` that ``pods`` (matchLabels) picks report
        ``metric_type`` adding up to ``total`` (each running one an equal share). Replaces an
        earlier script of the same metric and pods."""
        with self.lock:
            self.scripts = [
                s
                for s in self.scripts
                if (s.metric_type, s.namespace, s.pods) != (metric_type, namespace, dict(pods))
            ]
            self.scripts.append(Scripted(metric_type, namespace, dict(pods), total))

    def forget(self, namespace: str) -> None:
        """Drop every script of ``namespace``."""
        with self.lock:
            self.scripts = [s for s in self.scripts if s.namespace != namespace]

    # -- reading the cluster ----------------------------------------------------------------

    def _pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        core: Any = client.CoreV1Api(self.api_client)
        response = core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=10
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def _custom_objects(
        self, group: str, version: str, plural: str, namespace: str
    ) -> list[dict[str, Any]]:
        """The namespace's objects of a custom kind; none where the kind is not served."""
        api: Any = client.CustomObjectsApi(self.api_client)
        try:
            listing = api.list_namespaced_custom_object(
                group, version, namespace, plural, _request_timeout=10
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return []
            raise
        items: list[dict[str, Any]] = listing["items"]
        return items

    def _custom_object(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        api: Any = client.CustomObjectsApi(self.api_client)
        try:
            found: dict[str, Any] = api.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=10
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    # -- the series ------------------------------------------------------------------------

    def _shares(self, metric_type: str) -> list[tuple[dict[str, Any], float]]:
        """(pod, value) for every running pod a script of ``metric_type`` covers."""
        with self.lock:
            scripts = [s for s in self.scripts if s.metric_type == metric_type]
        shares: list[tuple[dict[str, Any], float]] = []
        for script in scripts:
            selector = ",".join(f"{k}={v}" for k, v in sorted(script.pods.items()))
            running = [p for p in self._pods(script.namespace, selector) if is_running(p)]
            shares += [(pod, script.total / len(running)) for pod in running]
        return shares

    def series(self, metric_type: str) -> list[TimeSeries]:
        """Every series of ``metric_type`` Cloud Monitoring holds now."""
        shares = self._shares(metric_type)
        if not metric_type.startswith(PROMETHEUS_PREFIX):
            return [s for pod, value in shares for s in container_series(metric_type, pod, value)]
        found: list[TimeSeries] = []
        monitorings: dict[str, list[dict[str, Any]]] = {}
        for pod, value in shares:
            namespace = pod["metadata"]["namespace"]
            if namespace not in monitorings:
                monitorings[namespace] = self._custom_objects(
                    "monitoring.googleapis.com", "v1", "podmonitorings", namespace
                )
            labels = pod["metadata"].get("labels") or {}
            for monitoring in monitorings[namespace]:
                if selector_selects(monitoring["spec"].get("selector") or {}, labels):
                    job = monitoring["metadata"]["name"]
                    found.append(prometheus_series(metric_type, pod, value, job))
        return found

    # -- the Stackdriver adapter -----------------------------------------------------------

    def pods_metric(
        self, *, namespace: str, selector: str, name: str, metric_selector: str
    ) -> list[tuple[str, float]]:
        """(pod, value) for the pods of ``namespace`` that ``selector`` picks, as the adapter's
        ``getNamespacedMetricBySelector`` answers (or, for an ``autoscaling.gke.io|`` name, as
        GKE's managed adapter does: :meth:`gke_pod_metric`)."""
        if name.startswith(GKE_METRIC_PREFIX):
            return self.gke_pod_metric(namespace=namespace, selector=selector, name=name)
        wanted = check_keys(
            parse_selector(metric_selector), CUSTOM_SELECTOR_PREFIXES, CUSTOM_SELECTOR_NAMES
        )
        metric_type = metric_type_of(name, external=False)
        pods = [p["metadata"]["name"] for p in self._pods(namespace, selector)]
        sums: dict[str, float] = collections.defaultdict(float)
        for series in self.series(metric_type):
            series_namespace, pod = pod_key(series)
            labels = series.filter_labels()
            if series_namespace == namespace and all(r.matches(labels) for r in wanted):
                sums[pod] += series.value
        return [(pod, sums[pod]) for pod in pods if pod in sums]

    def external_metric(self, *, name: str, selector: str) -> list[TimeSeries]:
        """The series of external metric ``name`` that ``selector`` picks, project-wide."""
        wanted = check_keys(
            parse_selector(selector), EXTERNAL_SELECTOR_PREFIXES, EXTERNAL_SELECTOR_NAMES
        )
        return [
            s
            for s in self.series(metric_type_of(name, external=True))
            if all(r.matches(s.filter_labels()) for r in wanted)
        ]

    # -- GKE's managed adapter --------------------------------------------------------------

    def gke_pod_metric(
        self, *, namespace: str, selector: str, name: str
    ) -> list[tuple[str, float]]:
        """(pod, value) of ``autoscaling.gke.io|<AutoscalingMetric>|<gauge>`` for the pods of
        ``namespace`` that ``selector`` picks: the gauge GKE scrapes from each pod the
        AutoscalingMetric selects, on its port."""
        parts = name.split("|")
        if len(parts) != 3:
            raise not_found(f"the server could not find the metric {go_quoted(name)} for pods")
        _, resource, gauge = parts
        metric = self._custom_object(
            "autoscaling.gke.io", "v1beta1", "autoscalingmetrics", namespace, resource
        )
        entries = [
            (entry["pod"], container, item["gauge"])
            for entry in (metric or {}).get("spec", {}).get("metrics", [])
            for container in entry["pod"]["containers"]
            for item in container["metrics"]
            if item["gauge"]["name"] == gauge
        ]
        if not entries:
            raise not_found(
                f"the server could not find the metric {go_quoted(name)}: no gauge {gauge!r} "
                f"in AutoscalingMetric {namespace}/{resource}"
            )
        pod_spec, container, gauge_spec = entries[0]
        # GKE scrapes gauges only: the pod's own exposition of that name, read as a gauge.
        metric_type = f"{PROMETHEUS_PREFIX}{gauge_spec['prometheusMetricName']}/gauge"
        values = {p["metadata"]["uid"]: v for p, v in self._shares(metric_type)}
        found = []
        for pod in self._pods(namespace, selector):
            labels = pod["metadata"].get("labels") or {}
            scraped = (
                is_running(pod)
                and selects(pod_spec["selector"]["matchLabels"], labels)
                and int(container["endpoint"]["port"]) in container_ports(pod)
                and pod["metadata"]["uid"] in values
            )
            if scraped:
                found.append((pod["metadata"]["name"], values[pod["metadata"]["uid"]]))
        return found

    # -- KEDA's metrics server --------------------------------------------------------------

    def keda_metric(self, *, namespace: str, name: str, selector: str) -> float:
        """The value KEDA's metrics server gives external metric ``name`` (``s<i>-prometheus``)
        of the ScaledObject the selector names: its trigger's query, evaluated."""
        owner = next(
            (r.values[0] for r in parse_selector(selector) if r.key == KEDA_OWNER_LABEL), None
        )
        index = re.fullmatch(r"s([0-9]+)-prometheus", name)
        scaled = (
            self._custom_object("keda.sh", "v1alpha1", "scaledobjects", namespace, owner)
            if owner and index
            else None
        )
        triggers = (scaled or {}).get("spec", {}).get("triggers", [])
        if not index or int(index[1]) >= len(triggers):
            raise not_found(f"no metric {name} for ScaledObject {namespace}/{owner}")
        trigger = triggers[int(index[1])]
        if trigger["type"] != "prometheus":
            raise not_found(f"trigger {index[1]} of {owner} is {trigger['type']}, not prometheus")
        return self.evaluate(trigger["metadata"]["query"])

    def evaluate(self, query: str) -> float:
        """A query of the chart's PromQL subset (see :class:`PromQuery`) over the series; no
        series gives 0, as KEDA's Prometheus scaler reads an empty answer by default."""
        parsed = PromQuery.parse(query)
        with self.lock:
            types = {s.metric_type for s in self.scripts}
        named = [t for t in types if promql_name(t) == parsed.name]
        counters = [t for t in named if t.endswith("/counter")]
        if named and parsed.rate != bool(counters):
            raise MetricsApiError(
                500,
                "InternalError",
                f"{parsed.name}: rate() is taken of counters only, and every counter through it",
            )
        return sum(
            s.value for t in named for s in self.series(t) if parsed.selects(s.promql_labels())
        )
