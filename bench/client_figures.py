"""The load-generator benchmark's figures: each client's CPU time sampled at whole seconds,
requests counted in the same seconds, a steady window without start-up and shutdown, the
median round, the ratios round by round and the report table. No process is started here.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

WARMUP_S: Final = 2
"""Seconds of load left out at the start of each run (connections, first requests)."""
TAIL_S: Final = 1
"""Seconds left out at the end (users stopping)."""


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler(threading.Thread):
    """Records a process's CPU time at each whole second of the clock, until it exits, so the
    CPU spent between two whole seconds can be paired with the requests counted in them."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.at_second: dict[int, float] = {}

    def run(self) -> None:
        while True:
            now = time.time()
            time.sleep(math.ceil(now) - now + 0.001)
            try:
                self.at_second[math.floor(time.time())] = process_cpu_s(self.pid)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return


@dataclass(frozen=True)
class ClientResult:
    """One client's steady-state figures."""

    client: str
    """Which load generator."""
    requests: int
    """Requests answered within the measured window."""
    failures: int
    """Failed requests over the whole run."""
    window_s: int
    """Length of the measured window."""
    cpu_s: float
    """Client CPU seconds within the window."""

    @property
    def rate(self) -> float:
        return self.requests / self.window_s if self.window_s else 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0


def steady_window(
    per_second: Mapping[int, int], cpu_at: Mapping[int, float]
) -> tuple[int, int] | None:
    """The whole seconds ``[start, end)`` to measure: the run's seconds with load, less
    ``WARMUP_S`` at the start and ``TAIL_S`` at the end, with CPU sampled at both ends."""
    if not per_second:
        return None
    start = min(per_second) + WARMUP_S
    end = max(per_second) - TAIL_S + 1
    while start < end and start not in cpu_at:
        start += 1
    while end > start and end not in cpu_at:
        end -= 1
    return (start, end) if end > start else None


def measure(
    *, client: str, per_second: Mapping[int, int], failures: int, cpu_at: Mapping[int, float]
) -> ClientResult:
    window = steady_window(per_second, cpu_at)
    if window is None:
        raise RuntimeError(f"{client}: the run was too short to leave a steady window")
    start, end = window
    return ClientResult(
        client=client,
        requests=sum(per_second.get(second, 0) for second in range(start, end)),
        failures=failures,
        window_s=end - start,
        cpu_s=cpu_at[end] - cpu_at[start],
    )


def locust_per_second(stats_file: Path) -> tuple[dict[int, int], int]:
    """Requests per whole second and failures, from Locust's ``--json-file`` output."""
    return per_second_of(json.loads(stats_file.read_text()))


def per_second_of(entries: Sequence[Mapping[str, Any]]) -> tuple[dict[int, int], int]:
    """Requests per whole second and failures, from Locust's statistics entries."""
    per_second: Counter[int] = Counter()
    failures = 0
    for entry in entries:
        failures += int(entry["num_failures"])
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(float(second))] += int(count)
    return dict(per_second), failures


def table(results: Sequence[ClientResult]) -> list[str]:
    """A Markdown table of the results, with each client's figures against the locustfile's."""
    base = next(r for r in results if r.client == "locustfile")
    lines = [
        "| client | req/s | req per client CPU-s | locustfile's req/CPU-s is | failures |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = base.per_cpu_s / r.per_cpu_s if r.per_cpu_s else math.inf
        lines.append(
            f"| {r.client} | {r.rate:,.0f} | {r.per_cpu_s:,.0f} | {ratio:.2f}x | {r.failures} |"
        )
    return lines


def median_run(runs: Sequence[ClientResult]) -> ClientResult:
    """The run with the median requests per CPU-second (the lower middle for an even count)."""
    ordered = sorted(runs, key=lambda r: r.per_cpu_s)
    return ordered[(len(ordered) - 1) // 2]


def ratios(rounds: Sequence[Mapping[str, ClientResult]], client: str) -> list[float]:
    """Per round, the locustfile's requests per CPU-second over ``client``'s: each pair was
    measured minutes apart at most, so a change in the machine's load affects both alike."""
    return [
        r["locustfile"].per_cpu_s / r[client].per_cpu_s if r[client].per_cpu_s else math.inf
        for r in rounds
    ]
