"""What the real HPA controller did to a release on the control plane, for the autoscaling
tests (tests/chart/autoscaling_cluster.py): the replica counts it set, as they changed, and when
it set them by its own clock; its conditions and the metric value it last read; and when it last
read a loaded value from the metrics stand-in (standins/kube/metrics/server.py)."""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kubernetes import client

from standins.kube.control_plane import ControlPlane
from standins.kube.metrics.server import MetricsApi


@dataclass
class Replicas:
    """The replica counts the HPA controller set on one Deployment, as they changed, timed from
    ``start`` (a background poll of its ``spec.replicas`` every 0.1 s)."""

    apps: Any
    namespace: str
    name: str
    start: float = field(default_factory=time.monotonic)
    changes: list[tuple[float, int]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    """Phase name -> when its load was set."""
    _stop: threading.Event = field(default_factory=threading.Event)

    def now(self) -> float:
        return time.monotonic() - self.start

    def current(self) -> int:
        return self.changes[-1][1]

    def mark(self, phase: str) -> float:
        self.marks[phase] = self.now()
        return self.marks[phase]

    def between(self, begin: float, end: float) -> list[tuple[float, int]]:
        """Changes in ``[begin, end)``, with the count in force at ``begin`` first."""
        before = [c for c in self.changes if c[0] < begin]
        inside = [c for c in self.changes if begin <= c[0] < end]
        return ([(begin, before[-1][1])] if before else []) + inside

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(client.ApiException):
                replicas = self.apps.read_namespaced_deployment(self.name, self.namespace)
                count = replicas.spec.replicas
                if not self.changes or self.changes[-1][1] != count:
                    self.changes.append((self.now(), count))

    @contextlib.contextmanager
    def watching(self) -> Iterator[Replicas]:
        count = self.apps.read_namespaced_deployment(self.name, self.namespace).spec.replicas
        self.changes.append((0.0, count))
        thread = threading.Thread(target=self._poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)

    def describe(self) -> str:
        marks = ", ".join(f"{name} at {at:.1f} s" for name, at in self.marks.items())
        steps = " -> ".join(f"{count} at {at:.1f} s" for at, count in self.changes)
        return f"loads: {marks}; replicas: {steps}"


@dataclass(frozen=True)
class Release:
    namespace: str
    name: str

    @property
    def deployment(self) -> str:
        return f"{self.name}-triton-inference-server"


def hpa_of(plane: ControlPlane, release: Release) -> dict[str, Any]:
    hpa: Any = client.AutoscalingV2Api(plane.api_client())
    answer = hpa.read_namespaced_horizontal_pod_autoscaler(
        release.deployment, release.namespace, _preload_content=False
    )
    result: dict[str, Any] = json.loads(answer.data)
    return result


def condition_of(hpa: Mapping[str, Any], kind: str) -> tuple[str, str]:
    for condition in hpa.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return condition["status"], condition["reason"]
    return "", ""


def current_value(hpa: Mapping[str, Any]) -> float | None:
    """The metric's current per-pod value as the controller last read it."""
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        current = metric.get(metric["type"][0].lower() + metric["type"][1:], {}).get("current", {})
        if "averageValue" in current:
            return _parse_quantity(current["averageValue"])
    return None


def _parse_quantity(text: str) -> float:
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


RESCALED = re.compile(
    r"^I(?P<month>\d\d)(?P<day>\d\d) (?P<clock>\d\d:\d\d:\d\d\.\d{6}) .*"
    r'"Successfully rescaled" .*HPA="(?P<hpa>[^"]+)" currentReplicas=(?P<current>\d+) '
    r"desiredReplicas=(?P<desired>\d+)"
)
"""kube-controller-manager's log line for each rescale, written right after it records the scale
event that its behaviour policies count (horizontal.go: ``storeScaleEvent``, then this line)."""


class Rescale(NamedTuple):
    """One rescale as the controller logged it."""

    at: float
    """Seconds on the controller's clock."""
    before: int
    after: int


def controller_rescales(log: Path, release: Release) -> list[Rescale]:
    """Each rescale of the release's HPA in the controller manager's ``log``. Its policy periods
    are measured on these times; the Deployment's polled count shows them late by however long a
    loaded machine delays the poll."""
    name = f"{release.namespace}/{release.deployment}"
    year = datetime.datetime.now(datetime.UTC).year
    rescales = []
    for line in log.read_text().splitlines():
        match = RESCALED.match(line) if '"Successfully rescaled"' in line else None
        if match and match["hpa"] == name:
            clock = datetime.datetime.strptime(
                f"{year}-{match['month']}-{match['day']} {match['clock']}", "%Y-%m-%d %H:%M:%S.%f"
            )
            rescales.append(
                Rescale(clock.timestamp(), int(match["current"]), int(match["desired"]))
            )
    return rescales


def pods_of(plane: ControlPlane, release: Release) -> dict[str, str]:
    apps: Any = client.AppsV1Api(plane.api_client())
    deployment = apps.read_namespaced_deployment(release.deployment, release.namespace)
    labels: dict[str, str] = deployment.spec.selector.match_labels
    return labels


def last_loaded_read(metrics_api: MetricsApi, release: Release) -> float:
    """When (monotonic) the HPA controller last read a non-zero value of this release's metric,
    from the stand-in's log: its requests carry the release's namespace and selector (the
    Deployment's, the duty-cycle selector's release label, or the ScaledObject's name)."""
    markers = (
        f"app.kubernetes.io/instance={release.name},",
        f"triton_release={release.name},",
        f"scaledobject.keda.sh/name={release.deployment}",
    )
    reads = [
        a.at
        for a in metrics_api.answered
        if f"/namespaces/{release.namespace}/" in a.path
        and any(m in a.query.get("labelSelector", "") + "," for m in markers)
        and sum(a.values.values()) > 0
    ]
    assert reads, "the controller never read this release's metric with load on it"
    return max(reads)


def hold(replicas: Replicas, count: int, seconds: float) -> None:
    """Wait ``seconds``, failing at once if the count leaves ``count``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert replicas.current() == count, replicas.describe()
        time.sleep(0.1)
