"""The Istio ingress mode (templates/istio.yaml).

Cases: Istio Gateway and VirtualService send HTTP to 8000 and gRPC to 8001 with timeout and
retries, gRPC on a host of its own when set, and only the inference gRPC methods; an existing
Istio Gateway is used as named; TLS credentialName and the HTTPS redirect; the weighted canary
split; two Istio releases' Gateways never conflict on the shared ingress gateway (Istio's
IST0145 rule, itself checked on Istio's example); the route matchers let through only health,
metadata, readiness and inference (real Triton paths matched against the rendered regexes),
generation included by default and left out when `ingress.inferencePaths` says so; streamed
answers (`generate_stream`, gRPC `ModelStreamInfer`, the OpenAI routes) have routes of their own
with the streaming timeout and tries that no per-try timeout cuts; the OpenAI-compatible
frontend's paths go to its own Service and port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helpers import (
    Manifest,
    conflicting_istio_gateways,
    field,
    only,
    render_chart,
)
from tests.chart.routes import (
    ALLOWED_HTTP,
    CANARY,
    ISTIO,
    REFUSED_HTTP,
    REPO,
    SERVICE,
    STREAMED_HTTP,
    istio_route,
    istio_routes_allow,
)


class TestIstio:
    TEMPLATE = "templates/istio.yaml"

    def test_gateway_and_routes(self, helm: Path) -> None:
        manifests = render_chart(helm, ISTIO, show_only=[self.TEMPLATE])
        gateway = only(manifests, "Gateway")
        assert gateway["apiVersion"] == "networking.istio.io/v1"
        assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
        vs = only(manifests, "VirtualService")
        assert vs["spec"]["gateways"] == [f"serving/{SERVICE}"]
        assert istio_routes_allow(vs, "POST", "/v2/models/bert/infer") == 8000
        assert istio_routes_allow(vs, "POST", "/inference.GRPCInferenceService/ModelInfer") == 8001
        for route in vs["spec"]["http"]:
            streamed = route["name"] in {"grpc-stream", "http-stream"}
            assert route["timeout"] == ("3600s" if streamed else "60s")
            assert route["retries"]["attempts"] == 2
            destination = route["route"][0]["destination"]["host"]
            assert destination == f"{SERVICE}.serving.svc.cluster.local"

    @pytest.mark.parametrize(("method", "path"), ALLOWED_HTTP)
    def test_allowed_paths_reach_triton(self, helm: Path, method: str, path: str) -> None:
        vs = only(render_chart(helm, ISTIO, show_only=[self.TEMPLATE]), "VirtualService")
        assert istio_routes_allow(vs, method, path) == 8000

    @pytest.mark.parametrize(("method", "path"), REFUSED_HTTP)
    def test_admin_paths_get_404(self, helm: Path, method: str, path: str) -> None:
        vs = only(render_chart(helm, ISTIO, show_only=[self.TEMPLATE]), "VirtualService")
        assert istio_routes_allow(vs, method, path) is None

    def test_streams_are_not_cut(self, helm: Path) -> None:
        ingress = {"mode": "istio", "host": "t.example.com", "streaming": {"timeout": "7200s"}}
        vs = only(
            render_chart(helm, {**REPO, "ingress": ingress}),
            "VirtualService",
        )
        for method, path in [
            *ALLOWED_HTTP,
            ("POST", "/inference.GRPCInferenceService/ModelStreamInfer"),
            ("POST", "/inference.GRPCInferenceService/ModelInfer"),
        ]:
            route = istio_route(vs, method, path)
            assert route is not None, path
            streamed = (method, path) in STREAMED_HTTP or path.endswith("/ModelStreamInfer")
            assert route["timeout"] == ("7200s" if streamed else "60s"), path
            assert ("perTryTimeout" in route["retries"]) is not streamed, path
            assert route["retries"]["retryOn"] == "connect-failure,refused-stream,unavailable,reset"

    def test_generation_can_be_left_out(self, helm: Path) -> None:
        ingress = {"mode": "istio", "host": "t.example.com", "inferencePaths": ["infer"]}
        vs = only(
            render_chart(helm, {**REPO, "ingress": ingress}),
            "VirtualService",
        )
        assert istio_routes_allow(vs, "POST", "/v2/models/bert/infer") == 8000
        assert istio_routes_allow(vs, "POST", "/v2/models/llm/generate") is None
        assert istio_routes_allow(vs, "POST", "/v2/models/llm/generate_stream") is None
        assert [r["name"] for r in vs["spec"]["http"]] == [
            "grpc-inference",
            "grpc-stream",
            "http-inference",
        ]

    def test_openai_frontend(self, helm: Path) -> None:
        openai = {"enabled": True, "serviceName": "llm-openai", "port": 9100}
        ingress = {"mode": "istio", "host": "t.example.com", "openai": openai}
        vs = only(
            render_chart(helm, {**REPO, "ingress": ingress}),
            "VirtualService",
        )
        for method, path in [
            ("GET", "/v1/models"),
            ("GET", "/v1/models/llama"),
            ("POST", "/v1/completions"),
            ("POST", "/v1/chat/completions"),
        ]:
            route = istio_route(vs, method, path)
            assert route is not None and route["name"] == "openai", path
            assert route["route"] == [
                {
                    "destination": {
                        "host": "llm-openai.serving.svc.cluster.local",
                        "port": {"number": 9100},
                    }
                }
            ]
            assert route["timeout"] == "3600s"
            assert {m["authority"]["exact"] for m in route["match"]} == {"t.example.com"}
        for method, path in [
            ("GET", "/v1/chat/completions"),
            ("GET", "/metrics"),
            ("POST", "/v1/models"),
        ]:
            assert istio_route(vs, method, path) is None

    def test_only_inference_grpc_methods(self, helm: Path) -> None:
        vs = only(render_chart(helm, ISTIO, show_only=[self.TEMPLATE]), "VirtualService")
        prefix = "/inference.GRPCInferenceService/"
        for method in ("ModelInfer", "ModelStreamInfer", "ModelMetadata", "ServerReady"):
            assert istio_routes_allow(vs, "POST", prefix + method) == 8001
        for method in (
            "RepositoryModelLoad",
            "RepositoryIndex",
            "ModelStatistics",
            "SystemSharedMemoryRegister",
            "TraceSetting",
            "LogSettings",
            "ModelConfig",
        ):
            assert istio_routes_allow(vs, "POST", prefix + method) is None

    def test_existing_gateway(self, helm: Path) -> None:
        values = {
            **REPO,
            "ingress": {
                "mode": "istio",
                "host": "t.example.com",  # the shared Gateway may own `*.example.com`
                "istio": {"createGateway": False, "existingGateway": "istio-ingress/shared"},
            },
        }
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        assert not [m for m in manifests if m["kind"] == "Gateway"]
        assert only(manifests, "VirtualService")["spec"]["gateways"] == ["istio-ingress/shared"]

    def test_tls_and_redirect(self, helm: Path) -> None:
        tls = {"enabled": True, "secretName": "cert", "httpsRedirect": True}
        values = {**REPO, "ingress": {"mode": "istio", "host": "t.example.com", "tls": tls}}
        servers = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "Gateway")["spec"][
            "servers"
        ]
        http, https = servers
        assert http["tls"] == {"httpsRedirect": True}
        assert https["tls"] == {"mode": "SIMPLE", "credentialName": "cert"}
        assert https["hosts"] == ["t.example.com"]

    def test_grpc_on_its_own_host(self, helm: Path) -> None:
        values = {
            **REPO,
            "ingress": {
                "mode": "istio",
                "host": "t.example.com",
                "grpc": {"host": "g.example.com"},
            },
        }
        vs = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "VirtualService")
        assert vs["spec"]["hosts"] == ["t.example.com", "g.example.com"]
        grpc = field(vs, "spec.http[name=grpc-inference]")
        assert {m["authority"]["exact"] for m in grpc["match"]} == {"g.example.com"}

    def test_canary_split(self, helm: Path) -> None:
        values = {**REPO, "ingress": {**ISTIO["ingress"], "canary": CANARY}}
        vs = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "VirtualService")
        for route in vs["spec"]["http"]:
            weights = {r["destination"]["host"].split(".")[0]: r["weight"] for r in route["route"]}
            assert weights == {SERVICE: 80, CANARY["serviceName"]: 20}

    def test_two_releases_gateways_do_not_conflict(self, helm: Path) -> None:
        """Each release names its own host, so Istio's IST0145 check finds no overlap on the
        shared ingress gateway, with HTTPS too."""
        tls = {"enabled": True, "secretName": "cert"}
        gateways = [
            only(
                render_chart(
                    helm,
                    {**REPO, "ingress": {"mode": "istio", "host": f"{r}.example.com", "tls": tls}},
                    release=r,
                    show_only=[self.TEMPLATE],
                ),
                "Gateway",
            )
            for r in ("blue", "green")
        ]
        assert [len(g["spec"]["servers"]) for g in gateways] == [2, 2]
        assert conflicting_istio_gateways(gateways) == []


class TestIstioConflictCheck:
    """The IST0145 check the tests above rely on, on Istio's own example and the chart's old
    default (a Gateway for `*` per release)."""

    @staticmethod
    def gateway(name: str, hosts: list[str], port: int = 80) -> Manifest:
        server = {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": hosts}
        return {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [server]},
        }

    def test_istio_documented_example_conflicts(self) -> None:
        alpha = self.gateway("alpha", ["foo.example.com"])
        beta = self.gateway("beta", ["*.example.com"])
        assert conflicting_istio_gateways([alpha, beta]) == [
            "default/alpha and default/beta: port 80, hosts ['foo.example.com']"
        ]

    def test_two_any_host_gateways_conflict(self) -> None:
        assert conflicting_istio_gateways([self.gateway("a", ["*"]), self.gateway("b", ["*"])])

    def test_other_port_or_distinct_hosts_do_not_conflict(self) -> None:
        assert not conflicting_istio_gateways(
            [self.gateway("a", ["a.example.com"]), self.gateway("b", ["b.example.com"])]
        )
        assert not conflicting_istio_gateways(
            [self.gateway("a", ["*"]), self.gateway("b", ["*"], port=8080)]
        )
