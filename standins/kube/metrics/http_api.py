"""The metrics stand-in's HTTP side: discovery, the custom and external metrics APIs answered
from the store (standins/kube/metrics/store.py), refusals as ``Status`` objects, and the HTTPS
server that trusts only the API server's front-proxy client certificate. The stand-in
(standins/kube/metrics/server.py) serves it and registers it."""

from __future__ import annotations

import collections
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standins.kube.metrics.errors import MetricsApiError, go_quoted, not_found
from standins.kube.metrics.selectors import parse_selector
from standins.kube.metrics.store import KEDA_OWNER_LABEL, MetricsStore

CUSTOM_GROUP = "custom.metrics.k8s.io"
EXTERNAL_GROUP = "external.metrics.k8s.io"
SERVED_VERSIONS: tuple[tuple[str, str, int], ...] = (
    (CUSTOM_GROUP, "v1beta1", 100),
    (CUSTOM_GROUP, "v1beta2", 200),
    (EXTERNAL_GROUP, "v1beta1", 100),
)
"""Group, version and ``versionPriority``, as the adapter's manifest registers them
(``deploy/production/adapter_new_resource_model.yaml``): the HPA controller prefers v1beta2."""


def _not_implemented(operation: str) -> MetricsApiError:
    return MetricsApiError(
        501, "BadRequest", f"Operation: {go_quoted(operation)} is not implemented"
    )


def quantity(value: float) -> str:
    """A value as the adapter returns it: a milli-quantity (``NewMilliQuantity(v*1000)``) in
    its canonical form."""
    milli = int(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Answered:
    """One request the stand-in answered, for tests to inspect."""

    at: float
    user: str
    groups: tuple[str, ...]
    path: str
    query: Mapping[str, str]
    status: int
    values: Mapping[str, float]
    """What it answered: pod name (pods metrics) or series index (external) -> value."""


# -- the HTTP side: discovery, the two APIs, Status answers ---------------------------------------


def _resource_list(group: str, version: str) -> dict[str, Any]:
    if group == EXTERNAL_GROUP:
        resource = {"name": "externalmetrics", "kind": "ExternalMetricValueList"}
    else:
        resource = {"name": "pods/*", "kind": "MetricValueList"}
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": [{**resource, "singularName": "", "namespaced": True, "verbs": ["get"]}],
    }


def _group(group: str) -> dict[str, Any]:
    versions = sorted(
        ((v, p) for g, v, p in SERVED_VERSIONS if g == group), key=lambda item: -item[1]
    )
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v, _ in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _status(error: MetricsApiError) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }


_CUSTOM_PATH = re.compile(
    rf"^/apis/{re.escape(CUSTOM_GROUP)}/(?P<version>v1beta[12])/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<resource>[^/]+)/(?P<object>[^/]+)/(?P<metric>[^/]+)$"
)
_EXTERNAL_PATH = re.compile(
    rf"^/apis/{re.escape(EXTERNAL_GROUP)}/v1beta1/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<metric>[^/]+)$"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MetricsHttpsServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``MetricsApi.answered`` instead."""

    def setup(self) -> None:
        super().setup()
        sock = self.connection
        assert isinstance(sock, ssl.SSLSocket)
        sock.settimeout(10)
        sock.do_handshake()
        subject = dict(item for rdn in sock.getpeercert()["subject"] for item in rdn)  # type: ignore[index, misc]
        if subject.get("commonName") not in self.server.allowed_names:
            raise ssl.SSLError(f"client certificate {subject} is not the API server's")

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        values: dict[str, float] = {}
        try:
            body = self._answer(path, query, values)
            status = 200
        except MetricsApiError as error:
            body, status = _status(error), error.code
        except Exception as exc:  # answer what went wrong instead of dropping the connection
            body = _status(MetricsApiError(500, "InternalError", f"{type(exc).__name__}: {exc}"))
            status = 500
        self.server.record(
            Answered(
                at=time.monotonic(),
                user=self.headers.get("X-Remote-User", ""),
                groups=tuple(self.headers.get_all("X-Remote-Group") or ()),
                path=path,
                query=query,
                status=status,
                values=values,
            )
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(
        self, path: str, query: Mapping[str, str], values: dict[str, float]
    ) -> dict[str, Any]:
        store = self.server.store
        if path in ("/healthz", "/livez", "/readyz"):
            return {"status": "ok"}
        if path == "/apis":
            groups = sorted({g for g, _, _ in SERVED_VERSIONS})
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_group(g) for g in groups],
            }
        for group, version, _ in SERVED_VERSIONS:
            if path == f"/apis/{group}":
                return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}
            if path == f"/apis/{group}/{version}":
                return _resource_list(group, version)
        if match := _CUSTOM_PATH.match(path):
            return self._custom(match, query, values)
        if match := _EXTERNAL_PATH.match(path):
            selector = query.get("labelSelector", "")
            if KEDA_OWNER_LABEL in selector:
                return self._keda(match["namespace"], match["metric"], selector, values)
            series = store.external_metric(name=match["metric"], selector=selector)
            values.update({str(i): s.value for i, s in enumerate(series)})
            stamp = _timestamp()
            return {
                "kind": "ExternalMetricValueList",
                "apiVersion": f"{EXTERNAL_GROUP}/v1beta1",
                "metadata": {},
                "items": [
                    {
                        "metricName": match["metric"],
                        "metricLabels": s.answer_labels(),
                        "timestamp": stamp,
                        "value": quantity(s.value),
                    }
                    for s in series
                ],
            }
        raise not_found(f"the server could not find {path}")

    def _keda(
        self, namespace: str, name: str, selector: str, values: dict[str, float]
    ) -> dict[str, Any]:
        """KEDA's metrics server's answer: one value, the trigger's (``GenerateMetricInMili``)."""
        value = self.server.store.keda_metric(namespace=namespace, name=name, selector=selector)
        values[name] = value
        return {
            "kind": "ExternalMetricValueList",
            "apiVersion": f"{EXTERNAL_GROUP}/v1beta1",
            "metadata": {},
            "items": [{"metricName": name, "timestamp": _timestamp(), "value": quantity(value)}],
        }

    def _custom(
        self, match: re.Match[str], query: Mapping[str, str], values: dict[str, float]
    ) -> dict[str, Any]:
        version, namespace, name = match["version"], match["namespace"], match["metric"]
        if match["resource"] != "pods":
            how = "selector" if match["object"] == "*" else "name"
            resource = go_quoted(match["resource"])
            raise _not_implemented(f"Get namespaced metric by {how} for resource {resource}")
        selector = query.get("labelSelector", "")
        if match["object"] != "*":
            selector = ""
        metric_selector = query.get("metricLabelSelector", "")
        answered = self.server.store.pods_metric(
            namespace=namespace, selector=selector, name=name, metric_selector=metric_selector
        )
        if match["object"] != "*":
            answered = [(pod, v) for pod, v in answered if pod == match["object"]]
            if not answered:
                raise not_found(
                    f"the server could not find the metric {go_quoted(name)} for pods "
                    f"{go_quoted(match['object'])}"
                )
        values.update(answered)
        stamp = _timestamp()
        selector_object = _label_selector_object(metric_selector)
        items = []
        for pod, value in answered:
            described = {
                "kind": "Pod",
                "namespace": namespace,
                "name": pod,
                "apiVersion": "/__internal",
            }
            item: dict[str, Any] = {"describedObject": described, "timestamp": stamp}
            if version == "v1beta2":
                item["metric"] = {"name": name, "selector": selector_object}
            else:
                item |= {"metricName": name, "selector": selector_object}
            item["value"] = quantity(value)
            items.append(item)
        return {
            "kind": "MetricValueList",
            "apiVersion": f"{CUSTOM_GROUP}/{version}",
            "metadata": {},
            "items": items,
        }


def _label_selector_object(text: str) -> dict[str, Any] | None:
    """A selector string as the ``LabelSelector`` object echoed in answers (None when empty)."""
    requirements = parse_selector(text)
    if not requirements:
        return None
    match_labels = {r.key: r.values[0] for r in requirements if r.operator == "="}
    expressions = [
        {"key": r.key, "operator": {"in": "In", "notin": "NotIn"}.get(r.operator, "Exists"),
         "values": list(r.values)}
        for r in requirements
        if r.operator != "="
    ]  # fmt: skip
    result: dict[str, Any] = {}
    if match_labels:
        result["matchLabels"] = match_labels
    if expressions:
        result["matchExpressions"] = expressions
    return result


class MetricsHttpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: MetricsStore, context: ssl.SSLContext, allowed: set[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.store = store
        self.allowed_names = allowed
        self.answered: collections.deque[Answered] = collections.deque(maxlen=5000)
        self._lock = threading.Lock()

    def record(self, answered: Answered) -> None:
        with self._lock:
            self.answered.append(answered)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake (no front-proxy certificate) is the expected answer: stay quiet."""
