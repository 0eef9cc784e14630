"""The metrics stand-in answers through the real API server as GKE's metrics readers would.

Cases, the Stackdriver adapter: discovery names both groups (v1beta2 preferred for custom
metrics) and leaves ``kubectl api-resources`` whole; a pods metric is shared by the running
pods the selector picks (v1beta1 and v1beta2 shapes, metric name escaped with ``|``), a pod
without series is left out; Managed Prometheus holds series only for pods a PodMonitoring
selects; the caller is the identity the API server forwards, and a client without the
front-proxy certificate is refused; selectors naming labels the adapter refuses get its
message; an external metric is project-wide (the namespace in the path filters nothing) and
filtered by its selector; GKE's duty cycle exists only for GPU containers and never exceeds
100 %; another resource than pods is not implemented. GKE's managed adapter: the gauge of the
pods an AutoscalingMetric selects, read on the port it names. KEDA's metrics server: a
ScaledObject's Prometheus trigger evaluated over the series (``job`` is the PodMonitoring's
name); a query outside the chart's PromQL is refused.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from standins.kube.metrics.series import DUTY_CYCLE
from standins.kube.metrics.server import MetricsApi
from tests.standins.test_kubelet import RESTRICTED_CONTAINER

QUEUE = "prometheus.googleapis.com/nv_inference_pending_request_count/gauge"
QUEUE_NAME = QUEUE.replace("/", "|")
SCRAPER = {
    "apiVersion": "monitoring.googleapis.com/v1",
    "kind": "PodMonitoring",
    "metadata": {"name": "scraper"},
    "spec": {
        "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
        "endpoints": [{"port": "metrics", "interval": "15s"}],
    },
}


def _create(plane: ControlPlane, namespace: str, body: dict[str, Any]) -> None:
    group, version = body["apiVersion"].split("/")
    plural = {"PodMonitoring": "podmonitorings", "AutoscalingMetric": "autoscalingmetrics"}
    plural |= {"ScaledObject": "scaledobjects"}
    api: Any = client.CustomObjectsApi(plane.api_client())
    api.create_namespaced_custom_object(group, version, namespace, plural[body["kind"]], body)


UNAVAILABLE_RETRY_S = 60.0


def _get(plane: ControlPlane, path: str, **query: str) -> tuple[int, dict[str, Any]]:
    """GET ``path`` from the API server as admin; (status, JSON body), errors included."""
    config = yaml.safe_load(plane.kubeconfig.read_text())
    context = ssl.create_default_context(
        cafile=config["clusters"][0]["cluster"]["certificate-authority"]
    )
    url = (
        plane.server
        + urllib.parse.quote(path)
        + ("?" + urllib.parse.urlencode(query) if query else "")
    )
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}"}
    )
    # The aggregator answers 503 in plain text while its last probe of the stand-in failed (a
    # busy machine can miss the probe's deadline); a client such as the HPA controller asks
    # again, and so does this one, for a bounded time.
    deadline = time.monotonic() + UNAVAILABLE_RETRY_S
    while True:
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code == 503 and not body.startswith(b"{") and time.monotonic() < deadline:
                time.sleep(1)
                continue
            if body.startswith(b"{"):
                return error.code, json.loads(body)
            return error.code, {"message": body.decode(errors="replace")}


@pytest.fixture
def pods(
    control_plane: ControlPlane,
    metrics_api: MetricsApi,
    kubelet: KubeletStandIn,
    k8s_namespace: str,
) -> Iterator[str]:
    """Two running pods labelled ``app=web`` (metrics on port 8002) and one ``app=other``
    (CPU), scraped by the PodMonitoring ``scraper``, and one GPU pod ``app=gpu`` with a
    sidecar, in ``k8s_namespace``."""
    core: Any = client.CoreV1Api(control_plane.api_client())
    web = {**RESTRICTED_CONTAINER, "ports": [{"name": "metrics", "containerPort": 8002}]}
    for name, app in (("web-0", "web"), ("web-1", "web"), ("other-0", "other")):
        core.create_namespaced_pod(
            k8s_namespace,
            {
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {"containers": [web if app == "web" else RESTRICTED_CONTAINER]},
            },
        )
    _create(control_plane, k8s_namespace, SCRAPER)
    gpu_container = {
        **RESTRICTED_CONTAINER,
        "name": "triton",
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    core.create_namespaced_pod(
        k8s_namespace,
        {
            "metadata": {"name": "gpu-0", "labels": {"app": "gpu", "team": "ml"}},
            "spec": {
                "containers": [gpu_container, {**RESTRICTED_CONTAINER, "name": "sidecar"}],
                "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            },
        },
    )
    wait_until(
        "four running pods",
        lambda: (
            sum(p.status.phase == "Running" for p in core.list_namespaced_pod(k8s_namespace).items)
            == 4
        ),
        timeout_s=60,
    )
    yield k8s_namespace
    metrics_api.store.forget(k8s_namespace)


def test_discovery_names_both_groups(control_plane: ControlPlane, metrics_api: MetricsApi) -> None:
    status, groups = _get(control_plane, "/apis")
    assert status == 200
    preferred = {g["name"]: g["preferredVersion"]["version"] for g in groups["groups"]}
    assert preferred["custom.metrics.k8s.io"] == "v1beta2"
    assert preferred["external.metrics.k8s.io"] == "v1beta1"
    status, resources = _get(control_plane, "/apis/external.metrics.k8s.io/v1beta1")
    assert status == 200 and resources["resources"][0]["kind"] == "ExternalMetricValueList"
    # A registered API nobody answers would make discovery partial and this fail.
    control_plane.run_kubectl("api-resources")


@pytest.mark.parametrize("version", ["v1beta1", "v1beta2"])
def test_pods_metric_is_shared_by_the_running_pods_selected(
    control_plane: ControlPlane, metrics_api: MetricsApi, pods: str, version: str
) -> None:
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "web"}, total=3)
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "other"}, total=7)
    status, answer = _get(
        control_plane,
        f"/apis/custom.metrics.k8s.io/{version}/namespaces/{pods}/pods/*/{QUEUE_NAME}",
        labelSelector="app=web",
    )
    assert status == 200, answer
    assert answer["kind"] == "MetricValueList"
    values = {item["describedObject"]["name"]: item["value"] for item in answer["items"]}
    assert values == {"web-0": "1500m", "web-1": "1500m"}
    (item, _) = answer["items"]
    if version == "v1beta2":
        assert item["metric"] == {"name": QUEUE_NAME, "selector": None}
    else:
        assert item["metricName"] == QUEUE_NAME
    # A pod without series (none scripted for app=gpu) is left out, as the adapter does.
    status, answer = _get(
        control_plane,
        f"/apis/custom.metrics.k8s.io/{version}/namespaces/{pods}/pods/*/{QUEUE_NAME}",
        labelSelector="app in (web,gpu)",
    )
    assert sorted(i["describedObject"]["name"] for i in answer["items"]) == ["web-0", "web-1"]


def test_caller_is_the_forwarded_identity_and_strangers_are_refused(
    control_plane: ControlPlane, metrics_api: MetricsApi
) -> None:
    # The HPA controller and the aggregator ask too: ours is found by a mark of its own.
    mark = f"probe-{time.monotonic_ns()}"
    _get(control_plane, "/apis/custom.metrics.k8s.io/v1beta2", mark=mark)
    (ours,) = [a for a in list(metrics_api.answered) if a.query.get("mark") == mark]
    assert (ours.user, ours.path) == ("admin", "/apis/custom.metrics.k8s.io/v1beta2")
    assert "system:masters" in ours.groups
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        socket.create_connection(("127.0.0.1", metrics_api.port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET /apis HTTP/1.1\r\nHost: x\r\n\r\n")
        if not tls.recv(1):
            raise ConnectionError("closed without an answer")


@pytest.mark.parametrize(
    ("path", "query", "key"),
    [
        (
            f"custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/{QUEUE_NAME}",
            "metricLabelSelector",
            "resource.labels.pod_name",
        ),
        (
            "external.metrics.k8s.io/v1beta1/namespaces/default/" + DUTY_CYCLE.replace("/", "|"),
            "labelSelector",
            "namespace_name",
        ),
    ],
    ids=["custom", "external"],
)
def test_selector_keys_the_adapter_refuses(
    control_plane: ControlPlane, metrics_api: MetricsApi, path: str, query: str, key: str
) -> None:
    status, answer = _get(control_plane, f"/apis/{path}", **{query: f"{key}=x"})
    assert (status, answer["message"]) == (400, f'Metric label: "{key}" is not allowed')


def test_external_metric_is_project_wide_and_filtered_by_its_selector(
    control_plane: ControlPlane, metrics_api: MetricsApi, pods: str
) -> None:
    metrics_api.store.script(DUTY_CYCLE, namespace=pods, pods={"app": "gpu"}, total=250)
    name = DUTY_CYCLE.replace("/", "|")
    path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/elsewhere/{name}"
    status, answer = _get(
        control_plane, path, labelSelector=f"resource.labels.namespace_name={pods}"
    )
    assert status == 200, answer
    (item,) = answer["items"]  # the GPU container only, not the sidecar
    assert item["value"] == "100"  # a GPU is busy at most all of the time
    labels = item["metricLabels"]
    assert labels["resource.type"] == "k8s_container"
    assert (labels["resource.labels.pod_name"], labels["resource.labels.container_name"]) == (
        "gpu-0",
        "triton",
    )
    status, answer = _get(control_plane, path, labelSelector="metadata.user_labels.team=other")
    assert (status, answer["items"]) == (200, [])
    status, answer = _get(control_plane, path, labelSelector="metadata.user_labels.team in (ml)")
    assert len(answer["items"]) == 1


def test_other_resources_are_not_implemented(
    control_plane: ControlPlane, metrics_api: MetricsApi
) -> None:
    status, answer = _get(
        control_plane,
        f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments/x/{QUEUE_NAME}",
    )
    assert status == 501
    assert answer["message"] == (
        'Operation: "Get namespaced metric by name for resource \\"deployments\\"" is not'
        " implemented"
    )


def test_only_pods_a_pod_monitoring_selects_have_prometheus_series(
    control_plane: ControlPlane, metrics_api: MetricsApi, pods: str
) -> None:
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "gpu"}, total=5)
    status, answer = _get(
        control_plane,
        f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{pods}/pods/*/{QUEUE_NAME}",
        labelSelector="app=gpu",
    )
    # The GPU pod has an `app` label too: the scraper selects it, so it has a series.
    assert [i["value"] for i in answer["items"]] == ["5"]
    api: Any = client.CustomObjectsApi(control_plane.api_client())
    api.delete_namespaced_custom_object(
        "monitoring.googleapis.com", "v1", pods, "podmonitorings", "scraper"
    )
    status, answer = _get(
        control_plane,
        f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{pods}/pods/*/{QUEUE_NAME}",
        labelSelector="app=gpu",
    )
    assert (status, answer["items"]) == (200, [])


def test_gke_pod_metric_reads_the_gauge_on_the_named_port(
    control_plane: ControlPlane, metrics_api: MetricsApi, pods: str
) -> None:
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "web"}, total=6)
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "other"}, total=9)

    def gauge(name: str, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling.gke.io/v1beta1",
            "kind": "AutoscalingMetric",
            "metadata": {"name": name},
            "spec": {
                "metrics": [
                    {
                        "pod": {
                            "selector": {"matchLabels": {"app": "web"}},
                            "containers": [
                                {
                                    "endpoint": {"port": port, "path": "/metrics"},
                                    "metrics": [
                                        {
                                            "gauge": {
                                                "name": "pending",
                                                "prometheusMetricName": QUEUE.split("/")[1],
                                            }
                                        }
                                    ],
                                }
                            ],
                        }
                    }
                ]
            },
        }

    _create(control_plane, pods, gauge("right-port", 8002))
    _create(control_plane, pods, gauge("wrong-port", 9090))
    base = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{pods}/pods/*/"
    status, answer = _get(
        control_plane, base + "autoscaling.gke.io|right-port|pending", labelSelector="app"
    )
    assert status == 200, answer
    # Only the AutoscalingMetric's pods (app=web), each its share, not app=other's.
    values = {i["describedObject"]["name"]: i["value"] for i in answer["items"]}
    assert values == {"web-0": "3", "web-1": "3"}
    status, answer = _get(
        control_plane, base + "autoscaling.gke.io|wrong-port|pending", labelSelector="app"
    )
    assert (status, answer["items"]) == (200, [])
    status, answer = _get(
        control_plane, base + "autoscaling.gke.io|right-port|absent", labelSelector="app"
    )
    assert status == 404


def test_keda_trigger_is_evaluated_over_the_series(
    control_plane: ControlPlane, metrics_api: MetricsApi, pods: str
) -> None:
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "web"}, total=6)
    metrics_api.store.script(QUEUE, namespace=pods, pods={"app": "other"}, total=9)
    metric = QUEUE.split("/")[1]
    queries = {
        "scraped": f'sum({metric}{{namespace="{pods}",job="scraper"}})',
        "web-only": f'sum({metric}{{namespace="{pods}",job="scraper",pod=~"web-.*"}})',
        "other-job": f'sum({metric}{{namespace="{pods}",job="elsewhere"}})',
        "not-ours": f'max({metric}{{namespace="{pods}"}})',
    }
    for name, query in queries.items():
        trigger = {"type": "prometheus", "metadata": {"query": query, "threshold": "1"}}
        _create(
            control_plane,
            pods,
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [trigger]},
            },
        )
    path = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{pods}/s0-prometheus"
    found = {}
    for name in queries:
        status, answer = _get(
            control_plane, path, labelSelector=f"scaledobject.keda.sh/name={name}"
        )
        found[name] = (status, answer["items"][0]["value"] if status == 200 else answer["message"])
    assert found["scraped"] == (200, "15")
    assert found["web-only"] == (200, "6")
    assert found["other-job"] == (200, "0")
    assert found["not-ours"][0] == 500
    assert "outside the PromQL this stand-in reads" in found["not-ours"][1]
