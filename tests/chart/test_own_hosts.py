"""Names the chart makes under ``ingress.hostSuffix``, and what the Application and NOTES say
about them and about every choice that needs something of the cluster or of the user.

Cases:
- istio without ``ingress.host``: the Gateway, the VirtualService's hosts and every authority
  match are ``<release>.<namespace>.<hostSuffix>``, so two releases (or one name in two
  namespaces) never collide (IST0145); a host given wins; no suffix and no host is refused
  naming both ways out; the longest release, namespace and suffix still make a DNS name;
- gatewayApi: HTTP stays any host, gRPC gets ``grpc.<release>.<namespace>.<hostSuffix>`` (a
  GRPCRoute may not share the HTTPRoute's hostname); a gRPC host given wins;
- NOTES name the release's own host, the DNS record to add and the curl with its Host header;
  with every host given they say nothing of the kind;
- the Application's info: where Triton answers in the cluster; the ingress host (with the DNS
  step and the curl for a name of the release's own); gRPC at the edge (its host and TLS, or
  off and why: GKE's load balancers need TLS for gRPC); autoscaling with its prerequisite,
  the Custom Metrics Stackdriver Adapter, and the commands that check it (the external
  metrics API for gpuDutyCycle); Managed Prometheus scraping, saying that a queue metric reads
  it; the Application's notes carry the ingress address commands and the same DNS step.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    HelmFailedError,
    Manifest,
    conflicting_istio_gateways,
    only,
    render_chart,
)
from tests.conftest import CHART_DIR, HELM4

REPO = {"modelRepository": "gs://bucket/models"}
SUFFIX = "triton.internal"
GLOBAL = {"className": "gke-l7-global-external-managed"}


def _istio(**ingress: Any) -> dict[str, Any]:
    return {**REPO, "ingress": {"mode": "istio", "hostSuffix": SUFFIX, **ingress}}


def _gateway(**ingress: Any) -> dict[str, Any]:
    return {
        **REPO,
        "ingress": {"mode": "gatewayApi", "hostSuffix": SUFFIX, "gatewayApi": GLOBAL, **ingress},
    }


def _hosts_of_istio(manifests: list[Manifest]) -> set[str]:
    gateway = only(manifests, "Gateway")
    service = only(manifests, "VirtualService")
    hosts = {h for server in gateway["spec"]["servers"] for h in server["hosts"]}
    hosts |= set(service["spec"]["hosts"])
    for route in service["spec"]["http"]:
        if route["name"].startswith("http"):  # gRPC shares the HTTP host by its paths
            hosts |= {m["authority"]["exact"] for m in route["match"]}
    return hosts


class TestIstio:
    def test_the_release_gets_a_name_of_its_own(self, helm: Path) -> None:
        manifests = render_chart(helm, _istio(), release="tri", namespace="apps")
        assert _hosts_of_istio(manifests) == {"tri.apps.triton.internal"}

    def test_two_releases_and_two_namespaces_never_collide(self, helm: Path) -> None:
        gateways = [
            only(render_chart(helm, _istio(), release=release, namespace=namespace), "Gateway")
            for release, namespace in (("tri", "apps"), ("tri", "other"), ("next", "apps"))
        ]
        assert conflicting_istio_gateways(gateways) == []

    def test_a_host_given_wins(self, helm: Path) -> None:
        manifests = render_chart(helm, _istio(host="t.example.com"))
        assert _hosts_of_istio(manifests) == {"t.example.com"}

    def test_no_host_and_no_suffix_is_refused_naming_both(self, helm: Path) -> None:
        with pytest.raises(HelmFailedError, match=r"or ingress\.hostSuffix for") as refused:
            render_chart(helm, {**REPO, "ingress": {"mode": "istio"}})
        assert "ingress.mode=istio needs ingress.host" in refused.value.stderr

    def test_the_longest_name_is_still_a_dns_name(self, helm: Path) -> None:
        """A release name of 53 characters (Helm's most), a namespace of 63 and a suffix of
        128 (the schema's most) make 246 characters, `grpc.` 251: within DNS's 253."""
        suffix = ".".join(["a" * 63, "b" * 62, "c"])
        values = {**REPO, "ingress": {"mode": "istio", "hostSuffix": suffix}}
        release, namespace = "r" * 53, "n" * 63
        manifests = render_chart(helm, values, release=release, namespace=namespace)
        (host,) = _hosts_of_istio(manifests)
        assert len(host) == 246 and host.endswith(suffix)
        too_long = {**REPO, "ingress": {"mode": "istio", "hostSuffix": suffix + "c"}}
        with pytest.raises(HelmFailedError, match="/ingress/hostSuffix"):
            render_chart(helm, too_long)


class TestGatewayApi:
    def test_grpc_gets_a_name_of_its_own_and_http_any_host(self, helm: Path) -> None:
        manifests = render_chart(helm, _gateway(), release="tri", namespace="apps")
        assert "hostnames" not in only(manifests, "HTTPRoute")["spec"]
        grpc = only(manifests, "GRPCRoute")
        assert grpc["spec"]["hostnames"] == ["grpc.tri.apps.triton.internal"]

    def test_a_grpc_host_given_wins(self, helm: Path) -> None:
        manifests = render_chart(helm, _gateway(grpc={"host": "g.example.com"}))
        assert only(manifests, "GRPCRoute")["spec"]["hostnames"] == ["g.example.com"]


def notes(*settings: str) -> str:
    """NOTES as `helm install` prints them for release `tri` in namespace `apps` (Helm 4: Helm
    3's client-side dry run still asks a cluster for its version)."""
    command = [str(HELM4), "install", "tri", str(CHART_DIR), "--dry-run=client", "-n", "apps"]
    command += ["--set", "modelRepository=gs://bucket/models"]
    for setting in settings:
        command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.split("NOTES:", 1)[1]


def test_notes_give_the_dns_record_and_the_curl_for_the_releases_own_host() -> None:
    text = notes("ingress.mode=istio", f"ingress.hostSuffix={SUFFIX}")
    host = "tri.apps.triton.internal"
    assert f"This release's own name is {host}, under ingress.hostSuffix {SUFFIX}." in text
    assert f"gcloud dns record-sets create {host}. --zone=ZONE --type=A" in text
    curl = f'curl -sf -H "Host: {host}" http://${{INGRESS_HOST}}:${{INGRESS_PORT}}/v2/health/ready'
    assert curl in text
    given = notes(
        "ingress.mode=istio", f"ingress.hostSuffix={SUFFIX}", "ingress.host=t.example.com"
    )
    assert "own name" not in given and "record-sets" not in given


def _info(helm: Path, values: dict[str, Any]) -> dict[str, str]:
    marked = {**values, "marketplace": {"enabled": True}}
    application = only(render_chart(helm, marked, release="tri", namespace="apps"), "Application")
    return {item["name"]: item["value"] for item in application["spec"]["info"]}


def _notes(helm: Path, values: dict[str, Any]) -> str:
    marked = {**values, "marketplace": {"enabled": True}}
    application = only(render_chart(helm, marked, release="tri", namespace="apps"), "Application")
    return str(application["spec"]["descriptor"]["notes"])


class TestApplicationInfo:
    def test_the_defaults_say_where_triton_answers(self, helm: Path) -> None:
        info = _info(helm, REPO)
        service = "tri-triton-inference-server.apps.svc"
        assert info == {
            "Triton in the cluster": f"HTTP {service}:8000, gRPC {service}:8001, "
            "metrics :8002 of the pods"
        }

    def test_istio_names_the_releases_host_the_dns_step_and_the_curl(self, helm: Path) -> None:
        info = _info(helm, _istio())
        host = "tri.apps.triton.internal"
        assert info["Ingress host (HTTP)"] == (
            f"{host}, this release's own name under ingress.hostSuffix {SUFFIX}: add a DNS "
            "record of it at the Istio ingress gateway's address (the notes show how); until "
            f"then send it as the Host header: curl -H 'Host: {host}' "
            "http://ADDRESS/v2/health/ready"
        )
        assert info["gRPC at the edge"] == host
        text = _notes(helm, _istio())
        assert "kubectl -n istio-system get service istio-ingressgateway" in text
        assert f'curl -sf -H "Host: {host}" http://${{INGRESS_HOST}}' in text
        assert f"gcloud dns record-sets create {host}." in text
        assert (
            info == _info(helm, _istio())
            and "own name" not in _info(helm, _istio(host="t.example.com"))["Ingress host (HTTP)"]
        )

    def test_grpc_off_on_a_gke_gateway_without_tls_says_why(self, helm: Path) -> None:
        info = _info(helm, _gateway(grpc={"enabled": False}))
        assert info["Ingress host (HTTP)"] == "any: requests to the Gateway's address reach Triton"
        assert info["gRPC at the edge"] == (
            "off: GKE's load balancers speak gRPC to clients over TLS only, and no TLS "
            "certificate Secret was given (ingress.tls.secretName); deploy again with one to "
            "route gRPC. In the cluster, gRPC answers at tri-triton-inference-server.apps.svc:8001"
        )

    def test_grpc_over_tls_names_its_host_and_certificate(self, helm: Path) -> None:
        tls = {"enabled": True, "secretName": "triton-tls"}
        info = _info(helm, _gateway(tls=tls))
        assert info["gRPC at the edge"] == (
            "grpc.tri.apps.triton.internal, over TLS on port 443 (certificate Secret "
            "triton-tls, which must name it)"
        )
        assert "grpc.tri.apps.triton.internal" in _notes(helm, _gateway(tls=tls))

    @pytest.mark.parametrize(
        ("metric", "api"),
        [
            ("queueTime", "v1beta1.custom.metrics.k8s.io"),
            ("pendingRequests", "v1beta1.custom.metrics.k8s.io"),
            ("gpuDutyCycle", "v1beta1.external.metrics.k8s.io"),
        ],
    )
    def test_autoscaling_states_its_prerequisite_and_how_to_check_it(
        self, helm: Path, metric: str, api: str
    ) -> None:
        scraped = metric != "gpuDutyCycle"
        values = {
            **REPO,
            "autoscaling": {"enabled": True, "metric": metric, "maxReplicas": 3},
            "metrics": {"podMonitoring": {"enabled": scraped}},
        }
        info = _info(helm, values)
        assert info["Autoscaling"] == (
            f"{metric}, 1 to 3 pods. Needs the Custom Metrics Stackdriver Adapter in the "
            f"cluster: kubectl get apiservice {api} shows AVAILABLE True, and kubectl -n apps "
            "describe hpa tri-triton-inference-server shows the metric's current value (not "
            "<unknown>)"
        )
        if scraped:
            assert info["Metrics"] == (
                "Managed Prometheus scrapes Triton's metrics (PodMonitoring "
                f"tri-triton-inference-server); autoscaling on {metric} reads them through it. "
                "Managed collection must be on in the cluster: kubectl -n gmp-system get pods "
                "lists its collectors"
            )
        else:
            assert "Metrics" not in info
