"""Request limits per ingress mode (templates/request-limits.yaml, the Triton arguments, the
GKE backend policy).

Cases: the default body limit admits the sample's largest JSON request (the contract's three
inputs of 128 ids at the largest default batch, every id of the vocabulary's widest) with a
margin; Triton gets ``--http-max-input-size`` from NGC 25.06 on and not with an older
``image.release`` (it would refuse to start), a tag that names no release (a republished copy,
``0.1.0``) keeps the chart's release and the flag, 0 leaves the flag out; in
``istio`` mode the opt-in EnvoyFilter on Triton's own sidecars answers bodies over the limit
with 413 (buffer filter) and compressed ones with 415 (a Lua filter refusing any
Content-Encoding but identity), each patch left out when its value allows it, on port 8000 only; in
``gatewayApi`` mode the Cloud Armor policy named reaches every backend's GCPBackendPolicy, the
canary's too; ``none`` renders neither; values that cannot work in a mode are refused with the
reason, and the schema refuses malformed ones. Every object validates against its CRD (Istio's
from ../shared/crds, GKE's from standins/kube/crds).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from samples.bert import contract
from samples.bert.build_settings import DEFAULT_MAX_BATCH_SIZE
from tests.chart.helpers import (
    HelmFailedError,
    Manifest,
    field,
    only,
    render_chart,
    triton_container,
)
from tests.conftest import CHART_DIR

REPO = {"modelRepository": "gs://bucket/models"}
ISTIO: dict[str, Any] = {**REPO, "ingress": {"mode": "istio", "host": "t.example.com"}}
GATEWAY_API: dict[str, Any] = {
    **REPO,
    "ingress": {"mode": "gatewayApi", "host": "t.example.com", "grpc": {"host": "g.example.com"}},
    "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
}
DEFAULT_LIMIT = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["requestLimits"][
    "maxBodyBytes"
]


def _largest_sample_request() -> int:
    """Bytes of the sample's largest JSON request: the largest default batch, every id as wide
    as the vocabulary's last (30521), as ``json.dumps`` writes it."""
    batch = max(DEFAULT_MAX_BATCH_SIZE.values())
    widest = [[30521] * contract.SEQUENCE_LENGTH] * batch
    inputs = [
        {"name": spec.name, "datatype": spec.datatype, "shape": [batch, 128], "data": widest}
        for spec in contract.INPUTS
    ]
    return len(json.dumps({"inputs": inputs}))


def test_the_default_limit_admits_the_samples_largest_request_with_margin() -> None:
    largest = _largest_sample_request()
    assert 150_000 < largest < 200_000  # about 170 KB: 64 x 3 x 128 ids
    assert 4 * largest <= DEFAULT_LIMIT


def _triton_args(helm: Path, values: dict[str, Any]) -> list[str]:
    return [str(a) for a in triton_container(render_chart(helm, values))["args"]]


@pytest.mark.parametrize(
    ("release", "flagged"),
    [("26.10", True), ("25.10", True), ("25.06", True), ("25.05", False), ("24.10", False)],
)
def test_triton_gets_the_limit_where_its_release_knows_the_flag(
    helm: Path, release: str, flagged: bool
) -> None:
    args = _triton_args(helm, {**REPO, "image": {"release": release}})
    assert (f"--http-max-input-size={DEFAULT_LIMIT}" in args) is flagged
    tagged = _triton_args(helm, {**REPO, "image": {"release": release, "tag": f"{release}-py3"}})
    assert tagged == args


@pytest.mark.parametrize("tag", ["my-build", "0.1.0", "1.10"])
def test_a_tag_that_is_no_release_gets_the_flag_and_zero_leaves_it_out(
    helm: Path, tag: str
) -> None:
    custom = _triton_args(helm, {**REPO, "image": {"tag": tag}})
    assert f"--http-max-input-size={DEFAULT_LIMIT}" in custom
    unlimited = _triton_args(helm, {**REPO, "requestLimits": {"maxBodyBytes": 0}})
    assert not [a for a in unlimited if a.startswith("--http-max-input-size")]
    # A large limit is written as an integer, never in exponent form.
    big = _triton_args(helm, {**REPO, "requestLimits": {"maxBodyBytes": 2_000_000_000}})
    assert "--http-max-input-size=2000000000" in big


def _envoy_filter(helm: Path, limits: dict[str, Any]) -> Manifest:
    return only(render_chart(helm, {**ISTIO, "requestLimits": limits}), "EnvoyFilter")


def _patches(envoy_filter: Manifest) -> dict[str, dict[str, Any]]:
    return {p["patch"]["value"]["name"]: p for p in envoy_filter["spec"]["configPatches"]}


def test_istio_envoy_filter_limits_body_size_and_refuses_compression(helm: Path) -> None:
    manifests = render_chart(helm, {**ISTIO, "requestLimits": {"istioEnvoyFilter": True}})
    envoy_filter = only(manifests, "EnvoyFilter")
    pod_labels = field(only(manifests, "Deployment"), "spec.template.metadata.labels")
    selector = envoy_filter["spec"]["workloadSelector"]["labels"]
    assert selector.items() <= pod_labels.items()
    patches = _patches(envoy_filter)
    assert set(patches) == {"envoy.filters.http.buffer", "triton.refuse-compressed-bodies"}
    for patch in patches.values():
        assert patch["applyTo"] == "HTTP_FILTER"
        assert patch["match"]["context"] == "SIDECAR_INBOUND"
        assert patch["match"]["listener"]["portNumber"] == 8000  # gRPC streams unbuffered
        assert patch["patch"]["operation"] == "INSERT_BEFORE"
    buffer = patches["envoy.filters.http.buffer"]["patch"]["value"]["typed_config"]
    assert buffer["max_request_bytes"] == DEFAULT_LIMIT
    lua = patches["triton.refuse-compressed-bodies"]["patch"]["value"]["typed_config"]
    source = lua["default_source_code"]["inline_string"]
    assert '[":status"] = "415"' in source
    # Any encoding but identity (case-insensitive) is refused; no header passes.
    condition = re.search(r"^\s*if (.+) then$", source, re.MULTILINE)
    assert condition is not None
    assert condition.group(1) == 'encoding ~= nil and string.lower(encoding) ~= "identity"'
    assert 'handle:headers():get("content-encoding")' in source


def test_istio_envoy_filter_leaves_out_what_the_values_allow(helm: Path) -> None:
    compressed = _patches(
        _envoy_filter(helm, {"istioEnvoyFilter": True, "allowCompressedBodies": True})
    )
    assert set(compressed) == {"envoy.filters.http.buffer"}
    unlimited = _patches(_envoy_filter(helm, {"istioEnvoyFilter": True, "maxBodyBytes": 0}))
    assert set(unlimited) == {"triton.refuse-compressed-bodies"}


def test_gateway_api_backend_policies_name_the_cloud_armor_policy(helm: Path) -> None:
    canary = {"enabled": True, "serviceName": "triton-next-triton-inference-server", "weight": 20}
    values = {
        **GATEWAY_API,
        "ingress": {**GATEWAY_API["ingress"], "canary": canary},
        "requestLimits": {"cloudArmorPolicy": "triton-edge"},
    }
    policies = render_chart(helm, values, show_only=["GCPBackendPolicy"])
    assert len(policies) == 2  # this release's backend and the canary's
    assert {p["spec"]["default"]["securityPolicy"] for p in policies} == {"triton-edge"}
    without = render_chart(helm, GATEWAY_API, show_only=["GCPBackendPolicy"])
    assert all("securityPolicy" not in p["spec"]["default"] for p in without)


def test_mode_none_renders_no_edge_limit(helm: Path) -> None:
    manifests = render_chart(helm, REPO)
    assert not [m for m in manifests if m["kind"] in {"EnvoyFilter", "GCPBackendPolicy"}]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**REPO, "requestLimits": {"cloudArmorPolicy": "edge"}}, "needs ingress.mode=gatewayApi"),
        ({**ISTIO, "requestLimits": {"cloudArmorPolicy": "edge"}}, "needs ingress.mode=gatewayApi"),
        ({**REPO, "requestLimits": {"istioEnvoyFilter": True}}, "needs ingress.mode=istio"),
        (
            {
                **ISTIO,
                "requestLimits": {
                    "istioEnvoyFilter": True,
                    "maxBodyBytes": 0,
                    "allowCompressedBodies": True,
                },
            },
            "has nothing to do",
        ),
        ({**REPO, "requestLimits": {"maxBodyBytes": -1}}, "maxBodyBytes"),
        ({**REPO, "requestLimits": {"cloudArmorPolicy": "Bad_Name"}}, "cloudArmorPolicy"),
        ({**REPO, "requestLimits": {"maxBodySize": 5}}, "maxBodySize"),
    ],
)
def test_limits_that_cannot_work_are_refused(
    helm: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailedError, match=message):
        render_chart(helm, values)
