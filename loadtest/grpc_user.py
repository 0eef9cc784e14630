"""The gRPC user: the same requests as the HTTP one, sent through tritonclient's gRPC client
(imported when a gRPC test starts: Locust's own image has neither numpy nor tritonclient, and
HTTP runs need neither), plaintext or over TLS with the run's trust settings, and the
readiness checks a gRPC run waits for (asked over gRPC, the way the load goes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from locust import User, task

from loadtest.load_options import RunSettings
from loadtest.load_run import (
    DEFAULT_HOST,
    PROBE_TIMEOUT_S,
    RUN,
    Paced,
    ReadinessCheck,
    stop_at_first_task,
    too_slow,
)
from loadtest.load_target import (
    GRPC_REFUSALS,
    GrpcEndpoint,
    PinnedCertificate,
    pin_presented_certificate,
    refused,
)
from samples.bert.client import BertBatch, UnexpectedResponseError, check_logits, infer_inputs
from samples.bert.contract import OUTPUT_LOGITS

_grpc_ready = False


def _init_grpc_for_gevent() -> None:
    """gRPC's own threads block gevent's loop unless it is told about gevent first."""
    global _grpc_ready
    if not _grpc_ready:
        from grpc.experimental import gevent as grpc_gevent  # type: ignore[import-untyped]

        grpc_gevent.init_gevent()
        _grpc_ready = True


def tritonclient_grpc() -> Any:
    """``tritonclient.grpc``, imported in the order gevent needs."""
    # numpy (which tritonclient needs) starts its threads when first imported: before gRPC is
    # switched to gevent, or the process hangs.
    import numpy  # noqa: F401

    _init_grpc_for_gevent()
    import tritonclient.grpc as grpcclient

    return grpcclient


class GrpcConnector:
    """Makes the gRPC clients of one test, every one alike: plaintext, or TLS trusting the
    system's CAs, ``--ca-file``'s, or with ``--insecure`` the certificate the server presents
    (fetched once: gRPC's Python API cannot skip the check, so it is pinned instead)."""

    def __init__(self, endpoint: GrpcEndpoint, settings: RunSettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._pinned: PinnedCertificate | None = None

    def _channel_args(self, grpcclient: Any) -> list[tuple[str, Any]]:
        """tritonclient's own channel settings (given any, it uses only those given), plus
        the authority."""
        keepalive = grpcclient.KeepAliveOptions()
        args: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ]
        if self.endpoint.authority:
            args.append(("grpc.default_authority", self.endpoint.authority))
        return args

    def _trust(self) -> tuple[bytes | None, str]:
        """The root certificates (None: the system's) and the name to check."""
        if self.settings.insecure:
            if self._pinned is None:
                host, _, port = self.endpoint.target.rpartition(":")
                self._pinned = pin_presented_certificate(
                    (host.strip("[]"), int(port)),
                    server_name=self.endpoint.name,
                    timeout_s=PROBE_TIMEOUT_S,
                )
            return self._pinned.pem, self._pinned.name
        ca_file = self.settings.ca_file
        return (Path(ca_file).read_bytes() if ca_file else None), self.endpoint.name

    def client(self) -> Any:
        """A new ``tritonclient.grpc.InferenceServerClient``, closed when the test stops.
        Raises ``OSError`` when ``--insecure`` cannot fetch the server's certificate."""
        grpcclient = tritonclient_grpc()
        args = self._channel_args(grpcclient)
        if not self.endpoint.tls:
            client = grpcclient.InferenceServerClient(self.endpoint.target, channel_args=args)
        else:
            import grpc  # type: ignore[import-untyped]

            root, name = self._trust()
            if self.endpoint.authority or self.settings.insecure:
                args.append(("grpc.ssl_target_name_override", name))
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            client = grpcclient.InferenceServerClient(
                self.endpoint.target, creds=credentials, channel_args=args
            )
        RUN.grpc_clients.append(client)
        return client


_REFUSAL_REASON = re.compile(r"CERTIFICATE_VERIFY_FAILED: ?[^:\n]*|Hostname Verification[^.]*")


def grpc_readiness(connector: GrpcConnector, settings: RunSettings) -> list[ReadinessCheck]:
    """The server's and the model's readiness asked over gRPC, through the endpoint the users
    call (a gRPC-only route is enough; a certificate refused ends the wait at once)."""
    clients: list[Any] = []
    error_type = tritonclient_grpc().InferenceServerException

    def probe(ask: Callable[[Any], bool]) -> Callable[[], str]:
        def answer() -> str:
            try:
                if not clients:
                    clients.append(connector.client())
                return "" if ask(clients[0]) else "not ready"
            except OSError as exc:  # --insecure could not fetch the certificate
                return str(exc) or type(exc).__name__
            except error_type as exc:
                message = str(exc)
                if any(marker in message for marker in GRPC_REFUSALS):
                    match = _REFUSAL_REASON.search(message)
                    reason = match.group(0) if match else message
                    raise refused(name=connector.endpoint.name, reason=reason) from exc
                return message.splitlines()[0] if message else type(exc).__name__

        return answer

    where = connector.endpoint.describe()
    model, version = settings.model_name, settings.model_version
    return [
        ReadinessCheck(
            what=f"gRPC ServerReady at {where}",
            probe=probe(lambda c: bool(c.is_server_ready(client_timeout=PROBE_TIMEOUT_S))),
        ),
        ReadinessCheck(
            what=f"gRPC ModelReady of {model} at {where}",
            probe=probe(
                lambda c: bool(c.is_model_ready(model, version, client_timeout=PROBE_TIMEOUT_S))
            ),
        ),
    ]


class BertGrpcUser(Paced, User):
    """Sends the same inference requests through tritonclient's gRPC client, reported to Locust
    through its request event, each answer checked like the HTTP ones."""

    host = DEFAULT_HOST
    request_name: ClassVar[str] = "ModelInfer"

    def on_start(self) -> None:
        self._calls: Iterator[tuple[BertBatch, list[Any]]]
        if RUN.unavailable or RUN.grpc_connector is None:
            self._calls = stop_at_first_task()
            return
        grpcclient = tritonclient_grpc()
        self._error_type = grpcclient.InferenceServerException
        self._client = RUN.grpc_connector.client()
        self._outputs = [grpcclient.InferRequestedOutput(OUTPUT_LOGITS)]
        calls = [(batch, infer_inputs(grpcclient, batch.named())) for batch in RUN.batches]
        self._calls = RUN.cycle(calls)
        self.stagger()

    @task
    def infer(self) -> None:
        batch, inputs = next(self._calls)
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            result = self._client.infer(
                RUN.settings.model_name,
                inputs,
                model_version=RUN.settings.model_version,
                outputs=self._outputs,
                client_timeout=RUN.settings.request_timeout_s,
            )
            if (slow := too_slow(started)) is not None:
                raise UnexpectedResponseError(slow)
            logits = result.as_numpy(OUTPUT_LOGITS)
            if logits is None:
                raise UnexpectedResponseError(f"the response has no output {OUTPUT_LOGITS!r}")
            check_logits(logits, batch_size=batch.batch_size, seq_len=batch.seq_len)
            length = int(logits.nbytes)
        except (UnexpectedResponseError, self._error_type) as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="gRPC",
            name=f"{RUN.settings.model_name} {self.request_name}",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
