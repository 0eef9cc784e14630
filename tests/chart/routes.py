"""What the ingress tests share: each mode's values, the Triton paths a route must let
through or refuse (real paths, matched against the rendered rules), and how an Istio
VirtualService picks the route for a request.
"""

from __future__ import annotations

import re
from typing import Any

from tests.chart.helpers import Manifest, field

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


OPENAI_ALLOWED = [
    ("GET", "/v1/models"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
]
"""Triton's OpenAI-compatible frontend: what every ingress mode passes (inference only)."""
OPENAI_WHERE_REGEX = [("GET", "/v1/models/llama")]
"""One model's description: passed where methods and one path segment can be matched
(Istio, Gateway API with regexPathMatch), refused by GKE's prefix matching."""
OPENAI_REFUSED = [
    ("POST", "/v1/models/llama/load"),
    ("POST", "/v1/models/llama/unload"),
    ("POST", "/v1/models/org/llama/load"),
    ("GET", "/v1/models/llama/load"),
    ("GET", "/metrics"),
    ("GET", "/health/ready"),
    ("POST", "/v1/responses"),
]
"""What no ingress mode passes to the frontend: its model management above all."""


def gateway_route_port(route: Manifest, method: str, path: str) -> int | None:
    """The backend port a Gateway API HTTPRoute sends (method, path) to, or None (404): the
    first rule with a match, as Exact, PathPrefix (by path segments) or RE2 regex."""
    for rule in route["spec"]["rules"]:
        for match in rule["matches"]:
            kind, value = match["path"]["type"], match["path"]["value"]
            if kind == "Exact":
                hit = path == value
            elif kind == "PathPrefix":
                hit = path == value.rstrip("/") or path.startswith(value.rstrip("/") + "/")
            else:
                hit = re.fullmatch(value, path) is not None
            if hit and match.get("method") in (None, method):
                return int(rule["backendRefs"][0]["port"])
    return None


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
    route = istio_route(virtual_service, method, path)
    return None if route is None else int(route["route"][0]["destination"]["port"]["number"])
