"""What every user of one Locust process shares: the run's settings, inputs and wire
requests (built once per test), the readiness wait before the load, and the pacing and time
limit each request obeys.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import gevent
from geventhttpclient.response import HTTPParseError

from common.waiting import wait_until
from loadtest.http_wire import KeepAliveConnection, Target, get_request, post_request
from loadtest.load_options import RunSettings
from loadtest.load_plan import Stage
from loadtest.load_target import UntrustedServerError, http_context, refused
from samples.bert.client import BertBatch, EncodedRequest, encode_binary, encode_json, make_batches

logger = logging.getLogger("bert_load")


def _closed() -> None:
    """``close`` of a gRPC client already closed."""


DEFAULT_HOST: Final = "http://127.0.0.1:8000"
"""Triton on this machine: the users' host when Locust is given none (run_single_user)."""
DISTINCT_REQUESTS: Final = 64
"""Different inputs cycled through, so no cache or branch predictor sees one request."""
PROBE_TIMEOUT_S: Final = 5.0
"""Longest wait for one readiness answer."""
INSECURE_WARNING: Final = (
    "--insecure: the server's certificate is NOT checked (neither who issued it nor the name "
    "it is for); anything on the path can read and change this traffic"
)


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
    grpc_connector: Any = None
    """``grpc_user.GrpcConnector`` of a gRPC run (None until its test starts)."""
    target: Target = field(default_factory=lambda: Target.from_url(DEFAULT_HOST))
    """Where the HTTP requests go."""
    tls: ssl.SSLContext | None = None
    """The client context of an ``https`` target (None for ``http``)."""
    started: bool = False
    """A test was started (its readiness wait began) in this process."""
    waiting: bool = False
    """The readiness wait is under way: the run's time has not started."""
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
        if settings.insecure and settings.ca_file:
            raise SystemExit(
                "--insecure and --ca-file are both given: --insecure skips the check --ca-file "
                "is for; keep --ca-file (the server is checked against it) or drop it"
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

    def build_target(self, host: str) -> None:
        """Where the HTTP requests and probes go, for ``-H`` ``host``, with the TLS settings.
        Raises ``ValueError`` for a host that is not an http(s) URL."""
        self.target = Target.from_url(host, host_header=self.settings.host_header)
        https = self.target.scheme == "https"
        settings = self.settings
        self.tls = (
            http_context(ca_file=settings.ca_file, insecure=settings.insecure) if https else None
        )

    def build_wire_requests(self) -> None:
        """The HTTP requests as bytes for the target (shared by every user of this process)."""
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


@dataclass(frozen=True)
class ReadinessCheck:
    """One thing to wait for before the load starts."""

    what: str
    """What is asked, for the messages (``http://HOST:PORT/v2/health/ready``)."""
    probe: Callable[[], str]
    """'' when ready, else what was answered; raises ``UntrustedServerError`` when the
    server's certificate is refused (waiting cannot help)."""


def http_probe(target: Target, path: str, *, tls: ssl.SSLContext | None) -> Callable[[], str]:
    """A GET of ``path`` on a connection of its own, as the users connect (Host header, TLS)."""
    request = get_request(target, path)

    def probe() -> str:
        connection = KeepAliveConnection(target, timeout_s=PROBE_TIMEOUT_S, tls=tls)
        try:
            answer = connection.exchange(request)
        except ssl.SSLCertVerificationError as exc:
            raise refused(name=target.server_name, reason=exc.verify_message) from exc
        except (OSError, HTTPParseError) as exc:
            return str(exc) or type(exc).__name__
        finally:
            connection.close()
        return "" if answer.status == 200 else f"HTTP {answer.status}"

    return probe


def http_readiness(
    host: str, *, target: Target, tls: ssl.SSLContext | None, model_path: str
) -> list[ReadinessCheck]:
    """``/v2/health/ready``, then the model's ``ready``, at ``host`` (``-H``, for the
    messages), asked through ``target`` as the users ask (Host header, TLS)."""
    return [
        ReadinessCheck(what=host.rstrip("/") + path, probe=http_probe(target, path, tls=tls))
        for path in ("/v2/health/ready", f"{model_path}/ready")
    ]


def wait_until_ready(checks: Sequence[ReadinessCheck], *, timeout_s: float, hint: str) -> str:
    """Wait for each check in turn; '' when all pass, else why not, once ``timeout_s`` has
    passed (at once for a refused certificate). ``hint`` ends the message: what to check."""
    deadline = time.monotonic() + timeout_s
    for check in checks:
        answer = ""
        next_report = time.monotonic()

        def answers(check: ReadinessCheck = check) -> bool:
            nonlocal answer, next_report
            answer = check.probe()
            if answer and time.monotonic() >= next_report:
                logger.info("waiting for %s (%s)", check.what, answer)
                next_report = time.monotonic() + 10
            return answer == ""

        remaining = deadline - time.monotonic()
        try:
            ready = wait_until(answers, timeout_s=remaining, interval_s=1, sleep=gevent.sleep)
        except UntrustedServerError as exc:
            return str(exc)
        if not ready:
            return (
                f"{check.what} was not ready within {timeout_s:.0f} s "
                f"(last answer: {answer}); {hint}"
            )
    return ""


def stop_at_first_task() -> Iterator[Any]:
    """What a user cycles through when the server could not be used: its first task stops it.
    Quietly: Locust logs a ``StopUser`` raised in ``on_start`` with a traceback, and one raised
    by a task not."""
    from locust.exception import StopUser  # here: the tests import this module without Locust

    raise StopUser()
    yield  # type: ignore[unreachable]  # a generator: the first next() raises


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
