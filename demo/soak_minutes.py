"""Per-minute figures of a Locust run, for ``make soak``.

Loaded beside the locustfile (``locust -f locust/locustfile-bert-large.py,demo/soak_minutes.py``),
it defines no user: it listens to every request and, at the end of each minute of load (counted
from the test's start), appends one JSON line to the file named by ``$SOAK_MINUTES_FILE``: the
minute, when it started (Unix time), its seconds, requests, failures, QPS and the p50/p95/p99
response times in ms. The last,
partial minute is written when the test stops.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

FILE_VARIABLE = "SOAK_MINUTES_FILE"
MINUTE_S = 60.0


def percentile(sorted_ms: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values; 0 for none."""
    if not sorted_ms:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_ms)))
    return sorted_ms[rank - 1]


@dataclass
class MinuteBuckets:
    """Response times and failures of the current minute, written out at its end."""

    path: Path | None = None
    started: float = 0.0
    started_unix: float = 0.0
    minute: int = 0
    times_ms: list[float] = field(default_factory=list)
    failures: int = 0
    ticker: gevent.Greenlet | None = None

    def start(self, path: Path) -> None:
        self.path, self.started, self.minute = path, time.monotonic(), 0
        self.started_unix = time.time()
        self.times_ms, self.failures = [], 0
        path.write_text("")
        self.ticker = gevent.spawn(self._tick)

    def record(self, response_time_ms: float, failed: bool) -> None:
        self.times_ms.append(response_time_ms)
        self.failures += failed

    def flush(self, seconds: float) -> None:
        if self.path is None:
            return
        times = sorted(self.times_ms)
        line = {
            "minute": self.minute,
            "start_unix": round(self.started_unix + self.minute * MINUTE_S, 3),
            "seconds": round(seconds, 1),
            "requests": len(times),
            "failures": self.failures,
            "qps": round(len(times) / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": round(percentile(times, 0.50), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
        }
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        self.minute += 1
        self.times_ms, self.failures = [], 0

    def _tick(self) -> None:
        while True:
            boundary = self.started + (self.minute + 1) * MINUTE_S
            gevent.sleep(max(0.0, boundary - time.monotonic()))
            self.flush(MINUTE_S)

    def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.kill(block=False)
            self.ticker = None
            self.flush(time.monotonic() - self.started - self.minute * MINUTE_S)
        self.path = None


BUCKETS = MinuteBuckets()


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def on_test_start(environment: Environment, **_: Any) -> None:
    # Registered after the locustfile's listener, which returns once the server is ready.
    target = os.environ.get(FILE_VARIABLE)
    if target and not isinstance(environment.runner, WorkerRunner):
        BUCKETS.start(Path(target))


@events.request.add_listener  # type: ignore[untyped-decorator]
def on_request(response_time: float, exception: BaseException | None, **_: Any) -> None:
    BUCKETS.record(response_time, exception is not None)


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def on_test_stop(**_: Any) -> None:
    BUCKETS.stop()
