"""The figures a load test ends with: requests, failures, achieved rate and latency percentiles.

Computed from Locust's serialized statistics entries: the list that ``--json-file`` writes, or
``[environment.stats.total.serialize()]`` inside a running test. Latencies come from Locust's
response-time histogram (milliseconds, rounded as Locust rounds them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.stats import histogram_percentile


@dataclass(frozen=True)
class LoadSummary:
    """What a run achieved, across every request name."""

    requests: int
    """Requests sent, failures included."""
    failures: int
    """Requests that failed: transport errors, non-200 answers, wrong outputs."""
    qps: float
    """Requests per second between the first request and the last response."""
    p50_ms: float
    """Median response time in milliseconds."""
    p95_ms: float
    """95th percentile response time in milliseconds."""
    p99_ms: float
    """99th percentile response time in milliseconds."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """A human-readable summary, one figure a line."""
        share = 100.0 * self.failures / self.requests if self.requests else 0.0
        return [
            f"requests  {self.requests}",
            f"failures  {self.failures} ({share:.2f} %)",
            f"rate      {self.qps:.1f} req/s",
            f"latency   p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms",
        ]


def summarize(entries: Iterable[Mapping[str, Any]]) -> LoadSummary:
    """Merge Locust's statistics entries (one per request name) into one summary."""
    histogram: Counter[float] = Counter()
    requests = failures = 0
    first: float | None = None
    last: float | None = None
    for entry in entries:
        requests += int(entry["num_requests"])
        failures += int(entry["num_failures"])
        for value, count in (entry.get("response_times") or {}).items():
            histogram[float(value)] += int(count)
        start, end = entry.get("start_time"), entry.get("last_request_timestamp")
        if start is not None and entry["num_requests"]:
            first = start if first is None else min(first, start)
        if end is not None:
            last = end if last is None else max(last, end)
    elapsed = (last - first) if first is not None and last is not None else 0.0
    return LoadSummary(
        requests=requests,
        failures=failures,
        qps=requests / elapsed if elapsed > 0 else 0.0,
        p50_ms=histogram_percentile(histogram, 0.50),
        p95_ms=histogram_percentile(histogram, 0.95),
        p99_ms=histogram_percentile(histogram, 0.99),
    )


def summarize_file(path: Path) -> LoadSummary:
    """The summary of a file written by Locust's ``--json-file`` (which appends ``.json``)."""
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path} is not a Locust statistics file (a JSON list of entries)")
    return summarize(entries)
