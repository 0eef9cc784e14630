"""What the deployer derives for a form choice that needs a companion (deployer/companions.py).

Cases: autoscaling on a queue metric turns Managed Prometheus scraping on (not for
gpuDutyCycle, not when autoscaling is off, nothing when it is on already); a TLS certificate
Secret turns TLS on at an edge, and with Ingress none is reported unused; gatewayApi without a
Secret turns gRPC off at the edge, with the reason; `render` prints each derivation on stderr,
its stdout staying the objects (valid YAML), and the values reaching the chart carry them;
a schema offering perfAnalyzer.enabled (which every deploy keeps off) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import companions, values
from deployer.errors import SchemaError
from tests.deployer.conftest import IMAGE_PARTS, SCHEMA, Run, write_values

BASE = {"autoscaling.enabled": False, "ingress.mode": "none", "ingress.grpc.enabled": True}


def _derived(**chosen: Any) -> list[str]:
    return [d.line() for d in companions.derive({**BASE, **chosen})]


@pytest.mark.parametrize("metric", companions.QUEUE_METRICS)
def test_a_queue_metric_turns_scraping_on(metric: str) -> None:
    chosen = {"autoscaling.enabled": True, "autoscaling.metric": metric}
    assert _derived(**chosen) == [
        f"metrics.podMonitoring.enabled=true: autoscaling on {metric} reads Triton's metrics, "
        "which Managed Prometheus scrapes (a PodMonitoring)"
    ]
    assert _derived(**chosen, **{"metrics.podMonitoring.enabled": True}) == []
    assert _derived(**{**chosen, "autoscaling.enabled": False}) == []


def test_gpu_duty_cycle_needs_no_scraping() -> None:
    assert _derived(**{"autoscaling.enabled": True, "autoscaling.metric": "gpuDutyCycle"}) == []


def test_a_tls_secret_turns_tls_on_at_an_edge_and_is_reported_unused_without_one() -> None:
    secret = {"ingress.tls.secretName": "triton-tls"}
    assert _derived(**{"ingress.mode": "istio"}, **secret) == [
        "ingress.tls.enabled=true: the edge serves HTTPS with the Secret triton-tls"
    ]
    assert _derived(**{"ingress.mode": "none"}, **secret) == [
        "the TLS certificate Secret triton-tls is not used: Ingress is none, so no edge serves TLS"
    ]
    derived = companions.derive({**BASE, "ingress.mode": "none", **secret})
    assert companions.apply({}, derived) == {}, "nothing set"


def test_grpc_at_a_gke_gateway_needs_tls() -> None:
    assert _derived(**{"ingress.mode": "gatewayApi"}) == [
        "ingress.grpc.enabled=false: GKE's load balancers speak gRPC to clients over TLS only "
        "and no TLS certificate Secret is given (ingress.tls.secretName): gRPC is not routed at "
        "the edge; in the cluster it answers on the Service's port 8001"
    ]
    with_tls = {"ingress.mode": "gatewayApi", "ingress.tls.secretName": "triton-tls"}
    assert [d.split(":")[0] for d in _derived(**with_tls)] == ["ingress.tls.enabled=true"]
    assert _derived(**{"ingress.mode": "gatewayApi", "ingress.grpc.enabled": False}) == []
    assert _derived(**{"ingress.mode": "istio"}) == [], "Istio's gateway speaks h2c"


def test_render_prints_each_derivation_on_stderr_and_the_chart_gets_it(
    run: Run, tmp_path: Path
) -> None:
    values_file = write_values(
        tmp_path, **{"autoscaling.enabled": True, "ingress.mode": "gatewayApi"}
    )
    result = run("render", values=values_file)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        "derived metrics.podMonitoring.enabled=true: autoscaling on queueTime reads Triton's "
        "metrics, which Managed Prometheus scrapes (a PodMonitoring)",
        "derived ingress.grpc.enabled=false: GKE's load balancers speak gRPC to clients over "
        "TLS only and no TLS certificate Secret is given (ingress.tls.secretName): gRPC is not "
        "routed at the edge; in the cluster it answers on the Service's port 8001",
    ]
    kinds = {d["kind"] for d in yaml.safe_load_all(result.out) if d}
    assert "PodMonitoring" in kinds and "GRPCRoute" not in kinds


def test_a_schema_offering_the_perf_analyzer_is_refused() -> None:
    document = yaml.safe_load(SCHEMA.read_text())
    document["properties"]["perfAnalyzer.enabled"] = {"type": "boolean", "default": True}
    with pytest.raises(SchemaError, match=r"offers perfAnalyzer\.enabled on the form"):
        values.parse_schema(document, image_parts=IMAGE_PARTS)
