"""What every user of one Locust process shares: the run's settings, inputs and wire
requests (built once per test), the readiness wait before the load, and the pacing and time
limit each request obeys. Loaded beside the locustfile (Locust puts its folder on sys.path).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import gevent
from http_wire import Target, post_request
from load_options import RunSettings
from load_plan import Stage

from common.waiting import wait_until
from samples.bert.client import BertBatch, EncodedRequest, encode_binary, encode_json, make_batches

logger = logging.getLogger("bert_load")


def _closed() -> None:
    """``close`` of a gRPC client already closed."""


DEFAULT_HOST: Final = "http://127.0.0.1:8000"
"""Triton on this machine: the users' host when Locust is given none (run_single_user)."""
DISTINCT_REQUESTS: Final = 64
"""Different inputs cycled through, so no cache or branch predictor sees one request."""


@dataclass
class LoadRun:
    """What every user of this process shares, built once per test."""

    settings: RunSettings = field(default_factory=RunSettings)
    stages: tuple[Stage, ...] = ()
    batches: list[BertBatch] = field(default_factory=list)
    requests: list[EncodedRequest] = field(default_factory=list)
    interval_s: float = 0.0
    """Seconds between two requests of one user (0: none)."""
    unavailable: str = ""
    """Why the server could not be used; users stop at once when set."""
    progress: gevent.Greenlet | None = None
    """The progress reporter, while a test runs."""
    grpc_clients: list[Any] = field(default_factory=list)
    """gRPC clients not closed yet: all are closed when the test stops, never by the users."""
    target: Target = field(default_factory=lambda: Target.from_url(DEFAULT_HOST))
    """Where the HTTP requests go."""
    infer_path: str = ""
    """The inference URL's path (the requests' name in Locust's statistics)."""
    wire_requests: list[tuple[EncodedRequest, bytes]] = field(default_factory=list)
    """Each HTTP request with its bytes on the wire, head and body (built once per test)."""
    reported_requests: int = 0
    """On a worker: requests (failures included) reported to the master so far."""
    reported_failures: int = 0
    """On a worker: failures reported to the master so far."""

    def close_grpc_clients(self) -> None:
        """Close every gRPC client, once, from a greenlet nothing kills (the test's stop).

        Once: tritonclient's ``__del__`` closes its client again, and a second close of a
        gRPC channel under gevent can wait forever at the process's exit (after calls were
        cut off by their deadline), so a closed client's ``close`` is made a no-op."""
        while self.grpc_clients:
            client = self.grpc_clients.pop()
            client.close()
            client.close = _closed

    def configure(self, options: argparse.Namespace | None) -> None:
        settings = RunSettings.from_options(options)
        if settings.user_qps == 0 and settings.load_shape != "users":
            raise SystemExit(
                "--user-qps 0 (no wait) sets no rate: use it with --load-shape users "
                "and Locust's --users, or give a positive --user-qps"
            )
        self.settings = settings
        self.stages = () if settings.load_shape == "users" else settings.stages()
        self.interval_s = 1.0 / settings.user_qps if settings.user_qps else 0.0

    def build_inputs(self) -> None:
        self.batches = make_batches(
            count=DISTINCT_REQUESTS,
            batch_size=self.settings.batch_size,
            seq_len=self.settings.seq_len,
        )
        encoder = {"binary": encode_binary, "json": encode_json}.get(self.settings.protocol)
        self.requests = [encoder(b) for b in self.batches] if encoder else []

    def build_wire_requests(self, host: str) -> None:
        """The HTTP requests as bytes for ``host`` (shared by every user of this process)."""
        self.target = Target.from_url(host)
        self.infer_path = f"{self.settings.model_path()}/infer"
        self.wire_requests = [
            (r, post_request(self.target, self.infer_path, r.body, r.headers))
            for r in self.requests
        ]

    def cycle(self, items: list[Any]) -> Iterator[Any]:
        """Endless iteration over ``items`` from a random start, so users do not move in step."""
        start = random.randrange(len(items))
        return itertools.cycle(items[start:] + items[:start])


RUN = LoadRun()


def _probe(url: str) -> str:
    """'' when ``url`` answers 200, else what it answered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return "" if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def wait_until_ready(host: str, settings: RunSettings) -> str:
    """Wait for ``/v2/health/ready`` then the model's ``ready``; '' when both answer 200,
    else why not, once ``settings.ready_timeout_s`` has passed."""
    deadline = time.monotonic() + settings.ready_timeout_s
    for path in ("/v2/health/ready", f"{settings.model_path()}/ready"):
        url = host.rstrip("/") + path
        answer = ""
        next_report = time.monotonic()

        def answers(url: str = url) -> bool:
            nonlocal answer, next_report
            answer = _probe(url)
            if answer and time.monotonic() >= next_report:
                logger.info("waiting for %s (%s)", url, answer)
                next_report = time.monotonic() + 10
            return answer == ""

        remaining = deadline - time.monotonic()
        if not wait_until(answers, timeout_s=remaining, interval_s=1, sleep=gevent.sleep):
            return (
                f"{url} was not ready within {settings.ready_timeout_s:.0f} s "
                f"(last answer: {answer}); check the host and --model-name"
            )
    return ""


class Paced:
    """Each user sends ``--user-qps`` requests a second (Locust's ``constant_throughput``,
    plus a random start): Locust starts a step's users almost together, and users paced alike
    from the same instant send in bursts that queue at the server. ``--user-qps 0``: no wait."""

    _next_send_s: float = 0.0

    def stagger(self) -> None:
        """Wait a random part of one interval before the first request."""
        interval = RUN.interval_s
        if interval > 0:
            gevent.sleep(random.random() * interval)
        self._next_send_s = time.monotonic()

    def wait_time(self) -> float:
        interval = RUN.interval_s
        if interval == 0:
            return 0.0
        now = time.monotonic()
        # A late answer shifts the schedule rather than causing a catch-up burst.
        self._next_send_s = max(self._next_send_s + interval, now)
        return self._next_send_s - now


def too_slow(started: float) -> str | None:
    """Why a request sent at ``started`` (``time.perf_counter()``) fails for its time alone,
    or None when it was answered within ``--request-timeout``."""
    elapsed = time.perf_counter() - started
    limit = RUN.settings.request_timeout_s
    if elapsed <= limit:
        return None
    return f"answered after {elapsed:.1f} s, more than --request-timeout {limit:g} s"
