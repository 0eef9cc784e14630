"""Ingress modes (templates/istio.yaml, templates/gateway-api.yaml).

Cases: `none` renders no route, and the README says its L4 Service balances gRPC per
connection; Istio Gateway and VirtualService send HTTP to 8000 and gRPC to
8001 with timeout and retries; an existing Istio Gateway is used as named; TLS credentialName
and the HTTPS redirect; Gateway API Gateway with its class, HTTPRoute and GRPCRoute on separate
hostnames, attached to the created Gateway or an existing parent; the HTTPS listener with
certificateRefs and the redirect route; the weighted canary split in both modes; two Istio
releases' Gateways never conflict on the shared ingress gateway (Istio's IST0145 rule, itself
checked on Istio's example); the route
matchers let through only health, metadata, readiness and inference (checked by matching
real Triton paths against the rendered regexes), generation (`generate`, `generate_stream`)
included by default and left out when `ingress.inferencePaths` says so; streamed answers
(`generate_stream`, gRPC `ModelStreamInfer`, the OpenAI routes) have routes of their own with
the streaming timeout and tries that no per-try timeout cuts, in Istio and in Gateway API
(regex rules, or the whole `/v2/models/` prefix without regexes); a GKE Gateway's backend
policy carries the streaming timeout (with IAP when on), other classes get none; the
OpenAI-compatible frontend's paths go to its own Service and port; narrowing the paths without
regexes, and the frontend without a mode or a Service, are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    HelmFailedError,
    Manifest,
    conflicting_istio_gateways,
    field,
    only,
    render_chart,
)
from tests.conftest import ROOT

REPO = {"modelRepository": "gs://bucket/models"}
SERVICE = "triton-triton-inference-server"
ISTIO: dict[str, Any] = {**REPO, "ingress": {"mode": "istio", "host": "t.example.com"}}
GATEWAY_API: dict[str, Any] = {
    **REPO,
    "ingress": {"mode": "gatewayApi", "host": "t.example.com", "grpc": {"host": "g.example.com"}},
    # The default class is regional: its proxies connect from the region's proxy-only subnet.
    "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
}
CANARY = {"enabled": True, "serviceName": "triton-next-triton-inference-server", "weight": 20}

ALLOWED_HTTP = [
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2"),
    ("GET", "/v2/models/bert"),
    ("GET", "/v2/models/bert/ready"),
    ("GET", "/v2/models/bert/versions/1"),
    ("GET", "/v2/models/bert/versions/1/ready"),
    ("POST", "/v2/models/bert/infer"),
    ("POST", "/v2/models/bert/versions/3/infer"),
    ("POST", "/v2/models/stats_model/infer"),
    ("POST", "/v2/models/s/infer"),
    ("GET", "/v2/models/statistics"),
    ("POST", "/v2/models/llm/generate"),
    ("POST", "/v2/models/llm/versions/2/generate"),
    ("POST", "/v2/models/llm/generate_stream"),
]
STREAMED_HTTP = {("POST", "/v2/models/llm/generate_stream")}
REFUSED_HTTP = [
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/bert/load"),
    ("POST", "/v2/repository/models/bert/unload"),
    ("GET", "/v2/models/stats"),
    ("GET", "/v2/models/bert/stats"),
    ("GET", "/v2/models/bert/versions/1/stats"),
    ("GET", "/v2/models/bert/config"),
    ("GET", "/v2/models/bert/trace/setting"),
    ("POST", "/v2/trace/setting"),
    ("POST", "/v2/logging"),
    ("GET", "/v2/systemsharedmemory/status"),
    ("POST", "/v2/cudasharedmemory/region/r/register"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("DELETE", "/v2/models/bert/infer"),
    ("GET", "/v2/models/bert/infer"),
    ("GET", "/v2/models/llm/generate"),
    ("GET", "/v2/models/llm/generate_stream"),
    ("POST", "/v2/models/llm/generate_streamed"),
    ("POST", "/v2/models/stats/generate"),
    ("POST", "/v1/chat/completions"),
]


def istio_route(virtual_service: Manifest, method: str, path: str) -> Manifest | None:
    """The route of an Istio VirtualService that takes (method, path), or None (404)."""
    for route in virtual_service["spec"]["http"]:
        for match in route["match"]:
            uri, wanted = match["uri"], field(match, "method.exact")
            hit = path == uri["exact"] if "exact" in uri else re.fullmatch(uri["regex"], path)
            if hit and wanted in (None, method):
                return route  # type: ignore[no-any-return]
    return None


def istio_routes_allow(virtual_service: Manifest, method: str, path: str) -> int | None:
    """The destination port an Istio VirtualService sends (method, path) to, or None (404)."""
    for route in virtual_service["spec"]["http"]:
        for match in route["match"]:
            uri, wanted = match["uri"], field(match, "method.exact")
            hit = path == uri["exact"] if "exact" in uri else re.fullmatch(uri["regex"], path)
            if hit and wanted in (None, method):
                return int(route["route"][0]["destination"]["port"]["number"])
    return None


class TestNone:
    def test_no_route_objects(self, defaults: list[Manifest]) -> None:
        routed = {"Gateway", "VirtualService", "HTTPRoute", "GRPCRoute"}
        assert not [m for m in defaults if m["kind"] in routed]

    @pytest.mark.parametrize("service_type", ["ClusterIP", "LoadBalancer"])
    def test_readme_says_none_balances_grpc_per_connection(
        self, helm: Path, service_type: str
    ) -> None:
        """With no L7 proxy, only the Service (L4) balances, once per connection: the README
        may not promise per-request gRPC balancing for `none`."""
        manifests = render_chart(helm, {**REPO, "service": {"type": service_type}})
        assert {m["kind"] for m in manifests} & {
            "VirtualService",
            "HTTPRoute",
            "GRPCRoute",
        } == set()
        assert only(manifests, "Service", SERVICE)["spec"]["type"] == service_type
        readme = " ".join((ROOT / "README.md").read_text().split())
        ingress = readme.split("## Ingress", 1)[1].split("### `istio`", 1)[0]
        assert "Every mode balances" not in ingress
        none_section = ingress.split("### `none`", 1)[1]
        assert "balances per connection" in none_section
        assert "each gRPC client stays on one pod" in none_section


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


class TestGatewayApi:
    TEMPLATE = "templates/gateway-api.yaml"

    def test_gateway_http_and_grpc_routes(self, helm: Path) -> None:
        manifests = render_chart(helm, GATEWAY_API, show_only=[self.TEMPLATE])
        gateway = only(manifests, "Gateway")
        assert gateway["spec"]["gatewayClassName"] == "gke-l7-regional-external-managed"
        assert [listener["name"] for listener in gateway["spec"]["listeners"]] == ["http"]
        http = only(manifests, "HTTPRoute")
        assert http["spec"]["hostnames"] == ["t.example.com"]
        assert http["spec"]["parentRefs"] == [{"name": SERVICE, "sectionName": "http"}]
        assert field(http, "spec.rules[0].backendRefs") == [
            {"name": SERVICE, "port": 8000, "weight": 100}
        ]
        assert field(http, "spec.rules[0].timeouts.request") == "60s"
        grpc = only(manifests, "GRPCRoute")
        assert grpc["spec"]["hostnames"] == ["g.example.com"]
        methods = {m["method"]["method"] for m in grpc["spec"]["rules"][0]["matches"]}
        assert methods == {
            "ServerLive",
            "ServerReady",
            "ServerMetadata",
            "ModelReady",
            "ModelMetadata",
            "ModelInfer",
            "ModelStreamInfer",
        }
        assert field(grpc, "spec.rules[0].backendRefs[0].port") == 8001

    def test_portable_matching_uses_exact_and_prefix_only(self, helm: Path) -> None:
        http = only(render_chart(helm, GATEWAY_API, show_only=[self.TEMPLATE]), "HTTPRoute")
        matches = [m for rule in http["spec"]["rules"] for m in rule["matches"]]
        assert {m["path"]["type"] for m in matches} == {"Exact", "PathPrefix"}
        assert {m["path"]["value"] for m in matches if m["path"]["type"] == "PathPrefix"} == {
            "/v2/models/"
        }
        assert all("method" not in m for m in matches)

    def test_portable_matching_streams_the_whole_model_prefix(self, helm: Path) -> None:
        http = only(render_chart(helm, GATEWAY_API, show_only=[self.TEMPLATE]), "HTTPRoute")
        timeouts = {
            m["path"]["value"]: rule["timeouts"]["request"]
            for rule in http["spec"]["rules"]
            for m in rule["matches"]
        }
        assert timeouts == {
            "/v2/health/live": "60s",
            "/v2/health/ready": "60s",
            "/v2": "60s",
            "/v2/models/": "3600s",
        }

    def test_regex_rules_stream_only_generate_stream(self, helm: Path) -> None:
        values = {
            **GATEWAY_API,
            "ingress": {**GATEWAY_API["ingress"], "gatewayApi": {"regexPathMatch": True}},
        }
        normal, streamed = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "HTTPRoute")[
            "spec"
        ]["rules"]
        assert normal["timeouts"]["request"] == "60s"
        assert streamed["timeouts"]["request"] == "3600s"
        (match,) = streamed["matches"]
        assert match["method"] == "POST"
        assert re.fullmatch(match["path"]["value"], "/v2/models/llm/generate_stream")
        assert not re.fullmatch(match["path"]["value"], "/v2/models/llm/generate")

    def test_gke_backend_policy_keeps_streams_open(self, helm: Path) -> None:
        streaming = {"timeout": "900s"}
        values = {**GATEWAY_API, "ingress": {**GATEWAY_API["ingress"], "streaming": streaming}}
        policy = only(render_chart(helm, values), "GCPBackendPolicy")
        assert policy["spec"]["default"] == {"timeoutSec": 900}
        assert policy["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": SERVICE}
        other_class = {
            **GATEWAY_API,
            "ingress": {**GATEWAY_API["ingress"], "gatewayApi": {"className": "istio"}},
        }
        assert not render_chart(helm, other_class, show_only=["GCPBackendPolicy"])

    def test_openai_frontend(self, helm: Path) -> None:
        openai = {"enabled": True, "serviceName": "llm-openai"}
        values = {**GATEWAY_API, "ingress": {**GATEWAY_API["ingress"], "openai": openai}}
        rule = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "HTTPRoute")["spec"][
            "rules"
        ][-1]
        assert rule["backendRefs"] == [{"name": "llm-openai", "port": 9000}]
        assert rule["timeouts"]["request"] == "3600s"
        assert [(m["path"]["type"], m["path"]["value"]) for m in rule["matches"]] == [
            ("Exact", "/v1/models"),
            ("PathPrefix", "/v1/models/"),
            ("Exact", "/v1/completions"),
            ("Exact", "/v1/chat/completions"),
        ]

    @pytest.mark.parametrize(("method", "path"), REFUSED_HTTP + ALLOWED_HTTP)
    def test_regex_matching_is_the_same_surface_as_istio(
        self, helm: Path, method: str, path: str
    ) -> None:
        values = {
            **GATEWAY_API,
            "ingress": {**GATEWAY_API["ingress"], "gatewayApi": {"regexPathMatch": True}},
        }
        http = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "HTTPRoute")
        allowed = any(
            (
                m["path"]["value"] == path
                if m["path"]["type"] == "Exact"
                else re.fullmatch(m["path"]["value"], path)
            )
            and m.get("method") in (None, method)
            for rule in http["spec"]["rules"]
            for m in rule["matches"]
        )
        assert allowed == ((method, path) in ALLOWED_HTTP)

    def test_existing_parent(self, helm: Path) -> None:
        ingress = {
            "mode": "gatewayApi",
            "grpc": {"enabled": False},
            "gatewayApi": {
                "createGateway": False,
                "parentRef": {"name": "shared", "namespace": "gateways", "sectionName": "https"},
            },
        }
        manifests = render_chart(helm, {**REPO, "ingress": ingress}, show_only=[self.TEMPLATE])
        assert {m["kind"] for m in manifests} & {"Gateway", "GRPCRoute"} == set()
        assert only(manifests, "HTTPRoute")["spec"]["parentRefs"] == [
            {"name": "shared", "namespace": "gateways", "sectionName": "https"}
        ]

    def test_tls_listener_and_redirect(self, helm: Path) -> None:
        tls = {"enabled": True, "secretName": "cert", "httpsRedirect": True}
        values = {**GATEWAY_API, "ingress": {**GATEWAY_API["ingress"], "tls": tls}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        https = field(only(manifests, "Gateway"), "spec.listeners[name=https]")
        assert https["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "cert"}]
        main = only(manifests, "HTTPRoute", SERVICE)
        assert main["spec"]["parentRefs"] == [{"name": SERVICE, "sectionName": "https"}]
        redirect = only(manifests, "HTTPRoute", "-redirect")
        assert redirect["spec"]["parentRefs"] == [{"name": SERVICE, "sectionName": "http"}]
        assert field(redirect, "spec.rules[0].filters[0].requestRedirect.scheme") == "https"

    def test_tls_without_redirect_serves_both_listeners(self, helm: Path) -> None:
        tls = {"enabled": True, "secretName": "cert"}
        values = {**GATEWAY_API, "ingress": {**GATEWAY_API["ingress"], "tls": tls}}
        http = only(render_chart(helm, values, show_only=[self.TEMPLATE]), "HTTPRoute")
        assert [p["sectionName"] for p in http["spec"]["parentRefs"]] == ["http", "https"]

    def test_canary_split(self, helm: Path) -> None:
        values = {**GATEWAY_API, "ingress": {**GATEWAY_API["ingress"], "canary": CANARY}}
        manifests = render_chart(helm, values, show_only=[self.TEMPLATE])
        for kind, port in (("HTTPRoute", 8000), ("GRPCRoute", 8001)):
            refs = field(only(manifests, kind), "spec.rules[0].backendRefs")
            assert refs == [
                {"name": SERVICE, "port": port, "weight": 80},
                {"name": CANARY["serviceName"], "port": port, "weight": 20},
            ]


FAILURES: list[tuple[str, dict[str, Any], str]] = [
    (
        "narrowed-prefix",
        {**GATEWAY_API["ingress"], "inferencePaths": ["infer"]},
        'ingress.inferencePaths is ["infer"], but with ingress.gatewayApi.regexPathMatch=false',
    ),
    (
        "openai-without-mode",
        {"openai": {"enabled": True, "serviceName": "llm"}},
        "ingress.openai routes the OpenAI-compatible frontend at the edge: set ingress.mode",
    ),
    (
        "openai-without-service",
        {"mode": "istio", "host": "t.example.com", "openai": {"enabled": True}},
        "ingress.openai.enabled needs ingress.openai.serviceName",
    ),
    (
        "unknown-path",
        {"mode": "istio", "host": "t.example.com", "inferencePaths": ["repository"]},
        "/ingress/inferencePaths/0",
    ),
    ("stream-timeout-not-seconds", {"streaming": {"timeout": "1h"}}, "/ingress/streaming/timeout"),
]


@pytest.mark.parametrize(
    ("ingress", "message"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_refused_with_what_to_set(helm: Path, ingress: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailedError) as failure:
        render_chart(helm, {**REPO, "ingress": ingress})
    assert message in failure.value.stderr
