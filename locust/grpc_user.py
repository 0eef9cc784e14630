"""The gRPC user: the same requests as the HTTP one, sent through tritonclient's gRPC client
(imported when the first user starts: Locust's own image has neither numpy nor tritonclient,
and HTTP runs need neither). Loaded beside the locustfile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from load_options import RunSettings
from load_run import DEFAULT_HOST, RUN, Paced, too_slow
from locust import User, task
from locust.exception import StopUser

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


def grpc_target(settings: RunSettings, host: str) -> str:
    """``host:port`` for the gRPC client: ``--grpc-url``, else the HTTP host on port 8001."""
    if settings.grpc_url:
        return settings.grpc_url
    hostname = urlsplit(host).hostname or "127.0.0.1"
    return f"{hostname}:8001"


class BertGrpcUser(Paced, User):
    """Sends the same inference requests through tritonclient's gRPC client, reported to Locust
    through its request event, each answer checked like the HTTP ones."""

    host = DEFAULT_HOST
    request_name: ClassVar[str] = "ModelInfer"

    def on_start(self) -> None:
        if RUN.unavailable:
            raise StopUser()
        # numpy (which tritonclient needs) starts its threads when first imported: before
        # gRPC is switched to gevent, or the process hangs.
        import numpy  # noqa: F401

        _init_grpc_for_gevent()
        import tritonclient.grpc as grpcclient

        self._error_type = grpcclient.InferenceServerException
        self._client = grpcclient.InferenceServerClient(grpc_target(RUN.settings, self.host))
        RUN.grpc_clients.append(self._client)
        self._outputs = [grpcclient.InferRequestedOutput(OUTPUT_LOGITS)]
        calls = [(batch, infer_inputs(grpcclient, batch.named())) for batch in RUN.batches]
        self._calls: Iterator[tuple[BertBatch, list[Any]]] = RUN.cycle(calls)
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
