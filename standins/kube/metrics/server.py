"""A stand-in for the metrics APIs the HPA controller reads on GKE: ``custom.metrics.k8s.io``
(v1beta1 and v1beta2) and ``external.metrics.k8s.io`` (v1beta1), served over HTTPS on a free
loopback port and registered with the API server as an aggregated API (``APIService`` objects,
a Service of type ExternalName ``localhost``), so the real controller reads it through the API
server, as on GKE.

It answers as the component that serves those APIs on GKE would, from the series of
standins/kube/metrics/store.py: the Custom Metrics Stackdriver Adapter (metric names with ``|``
for ``/``), GKE's managed adapter (``autoscaling.gke.io|<AutoscalingMetric>|<gauge>`` pods
metrics), and KEDA's metrics server (external metrics selected by
``scaledobject.keda.sh/name``). On a cluster only one of KEDA and the adapter can serve
``external.metrics.k8s.io``; here the request says which one it addresses. Answers
(standins/kube/metrics/http_api.py writes them) follow their sources' shapes:
``MetricValueList`` items with the described pod (``/__internal`` as its apiVersion, as the
adapter's translator leaves it), milli-quantities, and refusals as ``Status`` objects with the
adapter's messages (``Metric label: "<key>" is not allowed``, 400; ``Operation: "<what>" is not
implemented``, 501).

As an aggregated API server it trusts only the API server's front-proxy client certificate (the
CA that ``kube-system/extension-apiserver-authentication`` publishes) and records the identity
the API server forwards in ``X-Remote-User``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from standins.kube.metrics.http_api import SERVED_VERSIONS, Answered, MetricsHttpsServer
from standins.kube.metrics.store import MetricsStore

SERVICE_NAMESPACE = "custom-metrics"
SERVICE_NAME = "custom-metrics-stackdriver-adapter"
"""Where the adapter's manifest puts its Service; the stand-in registers under the same names."""


# -- certificates and registration ----------------------------------------------------------------


def _serving_certificate(folder: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``names`` (the APIService's caBundle trusts it)."""
    cert, key = folder / "tls.crt", folder / "tls.key"
    subject_alt = ",".join(["IP:127.0.0.1", *(f"DNS:{n}" for n in names)])
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={names[0]}", "-addext",
            f"subjectAltName={subject_alt}", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _front_proxy_trust(api_client: client.ApiClient) -> tuple[str, set[str]]:
    """The CA and the allowed client names an aggregated API server must trust, as the API
    server publishes them (``kube-system/extension-apiserver-authentication``)."""
    core: Any = client.CoreV1Api(api_client)
    data = core.read_namespaced_config_map("extension-apiserver-authentication", "kube-system").data
    allowed = set(json.loads(data.get("requestheader-allowed-names") or "[]"))
    return data["requestheader-client-ca-file"], allowed


class MetricsApi:
    """The stand-in, serving and registered (see the module docstring); ``stop`` unregisters it
    and ends the server."""

    def __init__(self, api_client: client.ApiClient, workdir: Path | None = None) -> None:
        self.store = MetricsStore(api_client)
        self._api_client = api_client
        self._folder = workdir or Path(tempfile.mkdtemp(prefix="metrics-api-"))
        self._server: MetricsHttpsServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def answered(self) -> list[Answered]:
        """Every request answered so far (the newest 5000), oldest first."""
        assert self._server is not None, "not started"
        with self._server._lock:
            return list(self._server.answered)

    def start(self) -> None:
        """Serve on a free loopback port and register the APIServices; return once the API
        server reports them Available and answers their paths."""
        service_host = f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc"
        cert, key = _serving_certificate(self._folder, [service_host, "localhost"])
        front_proxy_ca, allowed = _front_proxy_trust(self._api_client)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=front_proxy_ca)
        context.set_alpn_protocols(["http/1.1"])
        self._server = MetricsHttpsServer(self.store, context, allowed)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-api", daemon=True
        )
        self._thread.start()
        self._register(base64.b64encode(cert.read_bytes()).decode())

    def stop(self) -> None:
        """Unregister first (so discovery never names an API nobody answers), then stop."""
        with contextlib.suppress(client.ApiException):
            registration: Any = client.ApiregistrationV1Api(self._api_client)
            for group, version, _ in SERVED_VERSIONS:
                registration.delete_api_service(f"{version}.{group}")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _register(self, ca_bundle: str) -> None:
        core: Any = client.CoreV1Api(self._api_client)
        registration: Any = client.ApiregistrationV1Api(self._api_client)
        with contextlib.suppress(client.ApiException):
            core.create_namespace({"metadata": {"name": SERVICE_NAMESPACE}})
        service = {
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE},
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
            },
        }
        try:
            core.create_namespaced_service(SERVICE_NAMESPACE, service)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            core.patch_namespaced_service(SERVICE_NAME, SERVICE_NAMESPACE, service)
        for group, version, priority in SERVED_VERSIONS:
            body: dict[str, Any] = {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": f"{version}.{group}"},
                "spec": {
                    "group": group,
                    "version": version,
                    "groupPriorityMinimum": 100,
                    "versionPriority": priority,
                    "caBundle": ca_bundle,
                    "service": {
                        "name": SERVICE_NAME,
                        "namespace": SERVICE_NAMESPACE,
                        "port": self.port,
                    },
                },
            }
            with contextlib.suppress(client.ApiException):
                registration.delete_api_service(body["metadata"]["name"])
            registration.create_api_service(body)
        self._wait_available(registration)

    def _status_through_api_server(self, path: str) -> int:
        method, url, headers, body, _ = self._api_client.param_serialize(
            "GET", path, auth_settings=["BearerToken"]
        )
        response = self._api_client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=(5, 10)
        )
        return int(response.status)

    def _wait_available(self, registration: Any, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        names = [f"{version}.{group}" for group, version, _ in SERVED_VERSIONS]
        while True:
            waiting = []
            for name in names:
                conditions = registration.read_api_service(name).status.conditions or []
                if not any(c.type == "Available" and c.status == "True" for c in conditions):
                    waiting.append(f"{name}: {[(c.reason, c.message) for c in conditions]}")
            # Available comes from one controller of the aggregator, the proxy to the stand-in
            # from another: on a busy machine the second can lag, and the path answers 404.
            for group, version, _ in SERVED_VERSIONS if not waiting else ():
                status = self._status_through_api_server(f"/apis/{group}/{version}")
                if status != 200:
                    waiting.append(f"/apis/{group}/{version} answers {status}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"APIServices not Available after {timeout_s} s: {waiting}")
            time.sleep(0.2)


@contextlib.contextmanager
def serving_metrics_api(api_client: client.ApiClient, workdir: Path) -> Iterator[MetricsApi]:
    """A registered metrics stand-in for the length of the ``with`` block."""
    api = MetricsApi(api_client, workdir)
    try:
        api.start()
        yield api
    finally:
        api.stop()
