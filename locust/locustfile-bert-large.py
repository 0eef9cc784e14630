"""Load test for the BERT question-answering sample on Triton Inference Server.

    locust -f locust/locustfile-bert-large.py -H http://$INGRESS_HOST:$INGRESS_PORT

By default the rate steps up to 200 requests a second (50, 100, 150, 200, one step a minute)
and holds there until the test is stopped (Ctrl-C, the web UI, or Locust's ``--run-time``).
Each request carries one tokenized question/context pair; inputs are built once, before the
first request. Every answer is checked: a 200 whose output has the wrong name, type, shape or
size, or holds NaN, counts as a failure.

Options (each also read from the environment variable named after it, or from locust.conf):

    --protocol binary|json|grpc   LOCUST_PROTOCOL   v2 binary tensors (default), JSON, or gRPC
    --model-name NAME             LOCUST_MODEL_NAME
    --model-version N             LOCUST_MODEL_VERSION  (default: the server's latest)
    --seq-len N                   LOCUST_SEQ_LEN    tokens per sequence (default 128)
    --batch-size N                LOCUST_BATCH_SIZE sequences per request (default 1)
    --load-shape steps|constant|users  LOCUST_LOAD_SHAPE
                                  steps up to the target, the target from the start, or
                                  Locust's own --users/--spawn-rate (for maximum-rate runs)
    --target-qps Q                LOCUST_TARGET_QPS (default 200)
    --step-seconds S              LOCUST_STEP_SECONDS (default 60)
    --user-qps Q                  LOCUST_USER_QPS   requests a second per user (0: no wait)
    --host-header NAME            LOCUST_HOST_HEADER  the Host header (an edge that routes on
                                  a host name); with https also the certificate's name
    --ca-file PEM                 LOCUST_CA_FILE    CAs to trust for https and gRPC over TLS
    --insecure                    LOCUST_INSECURE   do not check the certificate (reported)
    --grpc-url HOST:PORT          LOCUST_GRPC_URL   (default: the -H host; port 8001 when -H
                                  is on port 8000, else -H's port; TLS when -H is https)
    --grpc-authority NAME         LOCUST_GRPC_AUTHORITY  (default: --host-header)
    --ready-timeout S             LOCUST_READY_TIMEOUT
    --request-timeout S           LOCUST_REQUEST_TIMEOUT  a request slower than S seconds
                                  (default 5) is cut off and counts as a failure
    --progress-seconds S          LOCUST_PROGRESS_SECONDS  one line of progress every S seconds
    --summary-file PATH           LOCUST_SUMMARY_FILE  the end-of-run summary as JSON, too

The duration is Locust's ``-t/--run-time`` (``LOCUST_RUN_TIME``), counted from the moment the
server and the model are ready: a run lasts at most ``--ready-timeout`` plus ``-t``. A server
not ready within ``--ready-timeout`` fails the run (exit code 1) without load, and so does any
run that sent no request.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import gevent
from geventhttpclient.response import HTTPParseError
from locust import LoadTestShape, User, events, task
from locust.env import Environment
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

# The repository root gives the load test's modules (loadtest/) and the sample's client code to
# a clone that is not installed with `pip install -e .` (Locust puts only this folder on the
# path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.grpc_user import BertGrpcUser, GrpcConnector, grpc_readiness
from loadtest.http_wire import KeepAliveConnection
from loadtest.load_options import add_options
from loadtest.load_plan import stage_at, users_for
from loadtest.load_run import (
    DEFAULT_HOST,
    INSECURE_WARNING,
    RUN,
    Paced,
    ReadinessCheck,
    http_readiness,
    stop_at_first_task,
    too_slow,
    wait_until_ready,
)
from loadtest.load_summary import summarize
from loadtest.load_target import grpc_endpoint
from samples.bert.client import (
    INFER_HEADER_LENGTH,
    EncodedRequest,
    UnexpectedResponseError,
    check_response,
)

logger = logging.getLogger("bert_load")

MAX_SPAWN_RATE: Final = 100
"""Users started per second when a stage adds users."""
WORKER_RETURN_S: Final = 10
"""Longest wait, past --stop-timeout, for stopped workers to report ready to the master."""
LAGGING_SHARE: Final = 0.9
"""Below this share of the target rate, the summary warns that the rate was not reached."""


events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]


@events.init.add_listener  # type: ignore[untyped-decorator]
def on_init(environment: Environment, **_: Any) -> None:
    RUN.configure(environment.parsed_options)
    if isinstance(environment.runner, WorkerRunner):
        # Locust adds its own listener (it serializes the statistics, then resets them) when it
        # creates the runner, before this event: this one runs after it and adds up what was sent.
        environment.events.report_to_master.add_listener(_count_report)  # type: ignore[no-untyped-call]


def _count_report(client_id: str, data: dict[str, Any]) -> None:
    total = data.get("stats_total") or {}
    RUN.reported_requests += int(total.get("num_requests", 0))
    RUN.reported_failures += int(total.get("num_failures", 0))


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def on_test_start(environment: Environment, **_: Any) -> None:
    """Build the inputs, then hold the load until the server and the model are ready; the
    run's time starts then (``BertLoadShape.tick``)."""
    RUN.configure(environment.parsed_options)  # the web UI may have changed them
    RUN.started = True
    settings = RUN.settings
    # run_single_user (debugging) sets no host: the users' default, Triton on this machine.
    host = environment.host or DEFAULT_HOST
    try:
        RUN.build_target(host)
    except ValueError as exc:
        _stop_without_load(environment, f"-H {host}: {exc}")
        return
    RUN.build_inputs()
    RUN.build_wire_requests()
    if settings.insecure:
        logger.warning(INSECURE_WARNING)
    if (settings.ca_file or settings.insecure) and RUN.target.scheme != "https":
        logger.warning("--ca-file and --insecure have no effect: -H is http://, no TLS is used")
    checks: list[ReadinessCheck]
    if settings.protocol == "grpc":
        endpoint = grpc_endpoint(settings, host)
        RUN.grpc_connector = GrpcConnector(endpoint, settings)
        checks = grpc_readiness(RUN.grpc_connector, settings)
        hint = "check --grpc-url, --grpc-authority (or --host-header) and --model-name"
        where = f"gRPC {endpoint.describe()}"
    else:
        checks = http_readiness(
            host, target=RUN.target, tls=RUN.tls, model_path=settings.model_path()
        )
        sent = f" (sent: Host: {RUN.target.host_header})" if settings.host_header else ""
        hint = f"check -H, --host-header{sent} and --model-name"
        where = host
    RUN.waiting = True
    try:
        RUN.unavailable = wait_until_ready(checks, timeout_s=settings.ready_timeout_s, hint=hint)
    finally:
        RUN.waiting = False
    if RUN.unavailable:
        _stop_without_load(environment, RUN.unavailable)
        return
    logger.info(
        "%s is ready; sending %s requests (%s shape, target %.0f QPS)",
        where,
        settings.protocol,
        settings.load_shape,
        settings.target_qps,
    )
    if environment.shape_class is not None:
        # The wait above is not part of the first step.
        environment.shape_class.reset_time()  # type: ignore[no-untyped-call]
    if settings.progress_s > 0:
        RUN.progress = gevent.spawn(report_progress, environment, settings.progress_s)


def _stop_without_load(environment: Environment, reason: str) -> None:
    """End the run before any request, exit code 1, with ``reason``."""
    RUN.unavailable = reason
    logger.error("not starting the load: %s", reason)
    environment.process_exit_code = 1
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


def report_progress(environment: Environment, every_s: float) -> None:
    """One line every ``every_s`` seconds: elapsed time, rate over the interval, p95 so far,
    failures so far (a compact alternative to Locust's table, e.g. with --only-summary)."""
    started = last_time = time.monotonic()
    last_count = 0
    while True:
        gevent.sleep(every_s)
        total = environment.stats.total
        now = time.monotonic()
        rate = (total.num_requests - last_count) / (now - last_time)
        logger.info(
            "%4.0f s  %7d requests  %7.1f req/s  p95 %5.0f ms  %d failures",
            now - started,
            total.num_requests,
            rate,
            total.get_response_time_percentile(0.95) or 0,
            total.num_failures,
        )
        last_time, last_count = now, total.num_requests


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        # Report the last figures now, before the worker tells the master it has stopped:
        # Locust's own last report goes after the master's "quit", which waits only 0.5 s for
        # it, and a busy worker's figures were lost.
        environment.runner._send_stats()
    if RUN.progress is not None:
        RUN.progress.kill(block=False)
        RUN.progress = None
    # Here, not in each user's on_stop, where a second kill of the user's greenlet could cut
    # a close short (and users stopped in the middle of on_start never reach on_stop).
    RUN.close_grpc_clients()


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def print_summary(environment: Environment, **_: Any) -> None:
    """Achieved rate, latency percentiles and failures, once the users have stopped; on a
    worker, what it reported to the master (the master's figures are the sum of these)."""
    if isinstance(environment.runner, WorkerRunner):
        logger.info(
            "worker %s reported %d requests, %d failures",
            environment.runner.client_id,
            RUN.reported_requests,
            RUN.reported_failures,
        )
        return
    summary = summarize([environment.stats.total.serialize()])
    settings = RUN.settings
    logger.info("summary (%s, %s shape):", settings.protocol, settings.load_shape)
    for line in summary.lines():
        logger.info("  %s", line)
    if settings.insecure:
        logger.warning("  TLS       certificates NOT checked (--insecure)")
    # One line for machines (kubectl logs | grep): requests, failures, qps, p50/p95/p99_ms,
    # and whether certificates went unchecked.
    figures = {**summary.to_json(), "insecure": settings.insecure}
    logger.info("summary json %s", json.dumps(figures, sort_keys=True))
    if settings.summary_file:
        Path(settings.summary_file).write_text(json.dumps(figures, indent=2) + "\n")
    for error in sorted(environment.stats.errors.values(), key=lambda e: -e.occurrences):
        logger.info("  %d x %s %s: %s", error.occurrences, error.method, error.name, error.error)
    if RUN.started and summary.requests == 0:
        # A load test that sent nothing shows nothing: it never passes.
        logger.error("  no request was sent: %s", RUN.unavailable or "the run ended first")
        environment.process_exit_code = environment.process_exit_code or 1
        return
    target = settings.target_qps
    if settings.load_shape == "constant" and summary.qps < LAGGING_SHARE * target:
        logger.warning(
            "the rate stayed below the %.0f QPS target: the server or this client (see its "
            "CPU) could not keep up",
            target,
        )


class BertHttpUser(Paced, User):
    """Sends inference requests over HTTP (binary tensors or JSON), each written out once
    (``http_wire``), on one keep-alive connection per user, and checks each answer."""

    host = DEFAULT_HOST
    _connection: KeepAliveConnection | None = None
    """None until ``on_start`` (a user stopped before it, or by it, has none to close)."""

    def on_start(self) -> None:
        self._requests: Iterator[tuple[EncodedRequest, bytes]]
        if RUN.unavailable:
            self._requests = stop_at_first_task()
            return
        self._requests = RUN.cycle(RUN.wire_requests)
        self._connection = KeepAliveConnection(
            RUN.target, timeout_s=RUN.settings.request_timeout_s, tls=RUN.tls
        )
        self._exchange = self._connection.exchange
        self._name = RUN.infer_path
        self._fire = self.environment.events.request.fire
        self.stagger()

    def on_stop(self) -> None:
        if self._connection is not None:
            self._connection.close()

    @task
    def infer(self) -> None:
        request, wire = next(self._requests)
        exception: Exception | None = None
        length = 0
        started = time.perf_counter()
        try:
            answer = self._exchange(wire, INFER_HEADER_LENGTH)
            length = len(answer.body)
            # The connection's timeout bounds each read, not the whole answer.
            if (slow := too_slow(started)) is not None:
                raise UnexpectedResponseError(slow)
            check_response(
                status=answer.status,
                body=answer.body,
                header_length=answer.header_length,
                request=request,
            )
        except (UnexpectedResponseError, ValueError, OSError, HTTPParseError) as exc:
            exception = exc
        self._fire(
            request_type="POST",
            name=self._name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )


class BertLoadShape(LoadTestShape):
    """The rate over time, as stages (see ``load_plan``): each user sends ``--user-qps``
    requests a second, so the number of users sets the rate. With ``--load-shape users`` it
    follows Locust's own ``--users`` and ``--spawn-rate`` instead."""

    use_common_options = True
    _last_tick: tuple[int, float, list[type[User]]] | None = None

    def end(self) -> None:
        """Before the run ends. A distributed master stops its workers first: a headless
        master otherwise quits with no stop phase and waits only 0.5 s for the workers' last
        figures, which a busy worker sends later (they were lost). Stopped workers come back
        ready after --stop-timeout; the master waits for them (not for missing ones), so its
        quit reaches them."""
        runner = self.runner
        if not isinstance(runner, MasterRunner) or runner.state in (STATE_STOPPING, STATE_STOPPED):
            return
        # A worker gone missing (its pod killed) never reports back: waiting for it would
        # hold every such run for the whole deadline.
        workers = len(runner.clients.all) - len(runner.clients.missing)
        runner.stop()
        deadline = time.monotonic() + (runner.environment.stop_timeout or 0) + WORKER_RETURN_S
        while len(runner.clients.ready) < workers and time.monotonic() < deadline:
            gevent.sleep(0.2)

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        if RUN.waiting and self._last_tick is not None:
            # The first tick started the test, whose start waits for readiness (the local
            # runner ticks on meanwhile): the run's time starts once the server is ready.
            return self._last_tick
        self._last_tick = self._next_tick()
        return self._last_tick

    def _next_tick(self) -> tuple[int, float, list[type[User]]] | None:
        settings = RUN.settings
        options = self.runner.environment.parsed_options if self.runner else None
        # Locust does not apply --run-time to a shape in headless mode: the shape does.
        run_time_limit = getattr(options, "run_time", None)
        run_time = self.get_run_time()  # type: ignore[no-untyped-call]
        if run_time_limit and run_time >= run_time_limit:
            self.end()
            return None
        user_class: type[User] = BertGrpcUser if settings.protocol == "grpc" else BertHttpUser
        if settings.load_shape == "users":
            users = int(getattr(options, "num_users", None) or 1)
            return users, float(getattr(options, "spawn_rate", None) or users), [user_class]
        stage = stage_at(RUN.stages, run_time)
        if stage is None:
            self.end()
            return None
        users = users_for(stage.qps, settings.user_qps)
        # Within a second (Locust warns above 100 a second); each then starts at a random
        # point of its interval.
        return users, float(min(users, MAX_SPAWN_RATE)), [user_class]


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(BertHttpUser)
