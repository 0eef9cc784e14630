"""What a form choice needs besides itself, derived so that every choice deploys.

A Marketplace form cannot make one field depend on another, and a user whose deploy fails
cannot edit its values: they delete the app and start again. So where a choice needs a
companion value, the deployer sets it, as it sets ``marketplace.enabled``, and says so; the
chart's own checks (which a ``helm install`` meets with a message saying what to set) then
never refuse a form choice. The chart names the outcome in the Application's info (a queue
metric's scraping, gRPC off at a GKE edge and why), so the user reads it where they look.

Hostnames are not derived here: the chart names a release with no host under
``ingress.hostSuffix`` (a form property with a default), for ``helm install`` users too.

Every function here is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

QUEUE_METRICS = ("queueTime", "pendingRequests")
"""Autoscaling metrics read from Triton's own metrics, which Managed Prometheus scrapes."""

GAUGE_ENGINES = {"gkePodMetrics": "pendingRequests"}
"""Engines that read one gauge from the pods themselves, and the metric they take: GKE's
in-cluster pod metrics read gauges only, so a counter's rate (queueTime) or GKE's own system
metric (gpuDutyCycle) cannot reach them."""


@dataclass(frozen=True)
class Derived:
    """One value the deployer sets (or leaves alone, ``key`` None) and why."""

    key: str | None
    """The dotted chart value set, or None for a choice left without effect."""
    value: Any
    """What it is set to."""
    why: str
    """The reason, in the words the deployer prints."""

    def line(self) -> str:
        """``KEY=VALUE: why`` (or the reason alone), as the deployer prints it."""
        if self.key is None:
            return self.why
        shown = str(self.value).lower() if isinstance(self.value, bool) else str(self.value)
        return f"{self.key}={shown}: {self.why}"


@dataclass(frozen=True)
class Rule:
    """A derivation: the form values it reads, and what it derives from them."""

    name: str
    reads: tuple[str, ...]
    """The form properties the rule looks at (tests try every combination of their choices)."""
    derive: Callable[[Mapping[str, Any]], list[Derived]]


def _a_metric_the_engine_reads(values: Mapping[str, Any]) -> list[Derived]:
    engine = values.get("autoscaling.engine", "stackdriverAdapter")
    metric = values.get("autoscaling.metric")
    gauge = GAUGE_ENGINES.get(engine)
    if not values.get("autoscaling.enabled") or gauge is None or metric == gauge:
        return []
    return [
        Derived(
            "autoscaling.metric",
            gauge,
            f"autoscaling.engine={engine} has GKE read a gauge from the pods themselves, and "
            f"{metric} is not one: it scales on {gauge} (requests waiting to start execution); "
            "choose engine stackdriverAdapter to scale on "
            f"{metric}",
        )
    ]


def _scrape_for_queue_metrics(values: Mapping[str, Any]) -> list[Derived]:
    metric = values.get("autoscaling.metric")
    if values.get("autoscaling.engine", "stackdriverAdapter") in GAUGE_ENGINES:
        return []  # GKE reads the pods' own metrics port: nothing to scrape
    wanted = values.get("autoscaling.enabled") and metric in QUEUE_METRICS
    if not wanted or values.get("metrics.podMonitoring.enabled"):
        return []
    return [
        Derived(
            "metrics.podMonitoring.enabled",
            True,
            f"autoscaling on {metric} reads Triton's metrics, which Managed Prometheus scrapes "
            "(a PodMonitoring)",
        )
    ]


def _tls_and_grpc_at_the_edge(values: Mapping[str, Any]) -> list[Derived]:
    mode = values.get("ingress.mode", "none")
    secret = values.get("ingress.tls.secretName") or ""
    if mode == "none":
        if not secret:
            return []
        return [
            Derived(
                None,
                None,
                f"the TLS certificate Secret {secret} is not used: Ingress is none, so no edge "
                "serves TLS",
            )
        ]
    derived = []
    if secret:
        derived.append(
            Derived("ingress.tls.enabled", True, f"the edge serves HTTPS with the Secret {secret}")
        )
    if mode == "gatewayApi" and values.get("ingress.grpc.enabled") and not secret:
        derived.append(
            Derived(
                "ingress.grpc.enabled",
                False,
                "GKE's load balancers speak gRPC to clients over TLS only and no TLS certificate "
                "Secret is given (ingress.tls.secretName): gRPC is not routed at the edge; in the "
                "cluster it answers on the Service's port 8001",
            )
        )
    return derived


RULES: tuple[Rule, ...] = (
    Rule(
        "an engine that reads gauges only takes its gauge",
        ("autoscaling.enabled", "autoscaling.engine", "autoscaling.metric"),
        _a_metric_the_engine_reads,
    ),
    Rule(
        "a queue metric needs Managed Prometheus",
        (
            "autoscaling.enabled",
            "autoscaling.engine",
            "autoscaling.metric",
            "metrics.podMonitoring.enabled",
        ),
        _scrape_for_queue_metrics,
    ),
    Rule(
        "TLS from its Secret, and gRPC at a GKE edge only with it",
        ("ingress.mode", "ingress.grpc.enabled", "ingress.tls.secretName"),
        _tls_and_grpc_at_the_edge,
    ),
)
"""Every derivation, in the order they apply."""


def derive(values: Mapping[str, Any]) -> list[Derived]:
    """What the rules derive from flat, checked form values (defaults filled in), each rule
    reading the values the rules before it derived."""
    derived: list[Derived] = []
    for rule in RULES:
        derived += rule.derive(apply(values, derived))
    return derived


def apply(values: Mapping[str, Any], derived: list[Derived]) -> dict[str, Any]:
    """``values`` with every derived value set."""
    return {**values, **{d.key: d.value for d in derived if d.key is not None}}
