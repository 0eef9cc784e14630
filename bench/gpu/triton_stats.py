"""Triton's own statistics of the served model: what it batched and how busy it was."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerCounters:
    """Triton's statistics for the model over one point (differences of its counters)."""

    sequences_per_batch: float
    """Mean sequences per model execution: the batch size dynamic batching formed."""
    model_busy: float
    """Time the model's instances spent executing, over wall time and instances (0-1)."""
    queue_ms: float
    """Mean time a request waited in the scheduler's queue."""
    compute_ms: float = 0.0
    """Mean time the model spent on a request's batch (inputs, inference, outputs): each
    request of a batch counts the whole batch's time, as Triton counts it."""
    request_ms: float = 0.0
    """Mean time from Triton receiving a request to its response being ready: the client's
    latency less the network and the client's own time."""


@dataclass(frozen=True)
class ModelStatistics:
    """Reads Triton's statistics of one model; the chart restricts that API to its key."""

    url: str
    model: str
    headers: dict[str, str]

    def read(self) -> dict[str, Any] | None:
        """The model's ``model_stats`` entry, or ``None`` (with a note) if Triton refuses."""
        request = urllib.request.Request(
            f"{self.url}/v2/models/{self.model}/stats", headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                stats: dict[str, Any] = json.loads(response.read())["model_stats"][0]
                return stats
        except (OSError, KeyError, IndexError, ValueError) as exc:
            print(f"note: no server statistics ({exc})", flush=True)
            return None


def admin_headers(args: Sequence[str], api: str = "statistics") -> dict[str, str]:
    """The header that opens ``api`` where Triton's args restrict it
    (``--http-restricted-api=a,b:header=value``); none where they do not."""
    for arg in args:
        name, _, value = arg.partition("=")
        if name != "--http-restricted-api":
            continue
        apis, _, header = value.rpartition(":")
        key, _, secret = header.partition("=")
        if api in apis.split(","):
            return {key: secret}
    return {}


def counters_between(
    before: dict[str, Any], after: dict[str, Any], *, wall_s: float, instances: int
) -> ServerCounters:
    """What Triton did between two readings of its statistics."""

    def busy_ns(stats: dict[str, Any]) -> int:
        return sum(
            batch[part]["ns"]
            for batch in stats.get("batch_stats", [])
            for part in ("compute_input", "compute_infer", "compute_output")
        )

    def delta(path: tuple[str, ...]) -> int:
        a: Any = after
        b: Any = before
        for key in path:
            a, b = a[key], b[key]
        return int(a) - int(b)

    def mean_ms(*parts: str) -> float:
        """Mean milliseconds per request over ``parts`` of ``inference_stats``."""
        counted = delta(("inference_stats", parts[0], "count"))
        spent = sum(delta(("inference_stats", part, "ns")) for part in parts)
        return spent / 1e6 / counted if counted else 0.0

    executions = delta(("execution_count",))
    return ServerCounters(
        sequences_per_batch=delta(("inference_count",)) / executions if executions else 0.0,
        model_busy=(busy_ns(after) - busy_ns(before)) / 1e9 / wall_s / max(1, instances),
        queue_ms=mean_ms("queue"),
        compute_ms=mean_ms("compute_input", "compute_infer", "compute_output"),
        request_ms=mean_ms("success"),
    )
