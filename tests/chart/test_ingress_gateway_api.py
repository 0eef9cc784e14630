"""The Gateway API ingress mode (templates/gateway-api.yaml).

Cases: a Gateway with its class, HTTPRoute and GRPCRoute on separate hostnames, attached to the
created Gateway or an existing parent; the HTTPS listener with certificateRefs and the redirect
route; the weighted canary split; the route matchers let through only health, metadata,
readiness and inference (real Triton paths matched against the rendered regexes, or the whole
`/v2/models/` prefix without regexes); streamed answers have rules of their own with the
streaming timeout; a GKE Gateway's backend policy carries the streaming timeout (with IAP when
on), other classes get none; the OpenAI-compatible frontend's paths go to its own Service.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart.helpers import (
    field,
    only,
    render_chart,
)
from tests.chart.routes import (
    ALLOWED_HTTP,
    CANARY,
    GATEWAY_API,
    REFUSED_HTTP,
    REPO,
    SERVICE,
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
            ("Exact", "/v1/completions"),
            ("Exact", "/v1/chat/completions"),
            ("Exact", "/v1/embeddings"),
        ]

    def test_every_backend_is_probed_and_guarded(self, helm: Path) -> None:
        """GKE's load balancer makes a backend of each Service a route sends to: one with no
        HealthCheckPolicy is probed at `/` (the OpenAI frontend answers it 404: unhealthy),
        one with no GCPBackendPolicy has a 30 s timeout and skips IAP."""
        openai = {"enabled": True, "serviceName": "llm-openai", "port": 9100}
        ingress = {**GATEWAY_API["ingress"], "canary": CANARY, "openai": openai}
        iap = {"enabled": True, "clientId": "id", "clientSecretName": "oauth"}
        manifests = render_chart(
            helm, {**GATEWAY_API, "ingress": ingress, "security": {"iap": iap}}
        )
        backends = {
            ref["name"]
            for route in manifests
            if route["kind"] in {"HTTPRoute", "GRPCRoute"}
            for rule in route["spec"]["rules"]
            for ref in rule.get("backendRefs", [])
        }
        assert backends == {SERVICE, CANARY["serviceName"], "llm-openai"}
        for kind in ("HealthCheckPolicy", "GCPBackendPolicy"):
            targets = [m["spec"]["targetRef"]["name"] for m in manifests if m["kind"] == kind]
            assert sorted(targets) == sorted(backends), kind
        probe = only(manifests, "HealthCheckPolicy", f"{SERVICE}-openai")
        assert field(probe, "spec.default.config.httpHealthCheck") == {
            "portSpecification": "USE_FIXED_PORT",
            "port": 9100,
            "requestPath": "/health/ready",
        }
        guard = only(manifests, "GCPBackendPolicy", f"{SERVICE}-openai")
        assert guard["spec"]["default"]["timeoutSec"] == 3600
        assert guard["spec"]["default"]["iap"]["enabled"] is True
        # Another release already attaches its own policies to the frontend's Service.
        ingress["openai"] = {**openai, "gkePolicies": False}
        kept = render_chart(
            helm, {**GATEWAY_API, "ingress": ingress}, show_only=["templates/gke-policies.yaml"]
        )
        assert "llm-openai" not in {m["spec"]["targetRef"]["name"] for m in kept}

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
