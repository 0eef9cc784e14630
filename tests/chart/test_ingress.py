"""Ingress modes: what holds across them (the Istio and Gateway API templates each have a
module of their own: test_ingress_istio.py, test_ingress_gateway_api.py).

Cases: `none` renders no route, and the README says its L4 Service balances gRPC per
connection; narrowing the paths without regexes, the OpenAI-compatible frontend without a mode
or a Service, an unknown path name and a streaming timeout that is not in seconds are refused,
each naming what to set; in every mode that routes (Istio, Gateway API with and without regexes)
the OpenAI-compatible frontend gets inference only (models list, completions, chat completions,
embeddings), never its model load and unload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    HelmFailedError,
    Manifest,
    only,
    render_chart,
)
from tests.chart.routes import (
    GATEWAY_API,
    ISTIO,
    OPENAI_ALLOWED,
    OPENAI_REFUSED,
    OPENAI_WHERE_REGEX,
    REPO,
    SERVICE,
    gateway_route_port,
    istio_routes_allow,
)
from tests.conftest import ROOT


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


OPENAI = {"enabled": True, "serviceName": "llm-openai", "port": 9100}
ROUTING_MODES: dict[str, dict[str, Any]] = {
    "istio": ISTIO,
    "gatewayApi-regex": {
        **GATEWAY_API,
        "ingress": {**GATEWAY_API["ingress"], "gatewayApi": {"regexPathMatch": True}},
    },
    "gatewayApi-prefix": GATEWAY_API,
}


def _openai_port(helm: Path, mode: str, method: str, path: str) -> int | None:
    values = ROUTING_MODES[mode]
    manifests = render_chart(helm, {**values, "ingress": {**values["ingress"], "openai": OPENAI}})
    if mode == "istio":
        return istio_routes_allow(only(manifests, "VirtualService"), method, path)
    return gateway_route_port(only(manifests, "HTTPRoute"), method, path)


@pytest.mark.parametrize("mode", sorted(ROUTING_MODES))
@pytest.mark.parametrize(("method", "path"), OPENAI_ALLOWED + OPENAI_REFUSED + OPENAI_WHERE_REGEX)
def test_the_openai_edge_passes_inference_only(
    helm: Path, mode: str, method: str, path: str
) -> None:
    port = _openai_port(helm, mode, method, path)
    regex = mode != "gatewayApi-prefix"
    passes = (method, path) in OPENAI_ALLOWED or (regex and (method, path) in OPENAI_WHERE_REGEX)
    assert port == (OPENAI["port"] if passes else None), f"{method} {path} reaches port {port}"
