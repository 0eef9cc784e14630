"""The real locustfile run by the real Locust, headless and bounded, against a real local Triton.

Cases: a constant-rate run reaches its target with no failures over binary, JSON (a pinned model
version) and gRPC (three sequences a request); a server answering 200 with outputs of the wrong
shape has every request counted as a failure, with the reason printed; a server that stalls each
answer (for less than Locust's own 60 s) has every request counted as a failure at
--request-timeout, over HTTP and gRPC; Triton stopped in the middle of a run gives failures and a
clean end (summary printed, statistics written, exit code 1); the stepped shape climbs through
its stages and stops at --run-time; an unknown model or an absent server is reported after
--ready-timeout instead of load being sent, and fails the run (exit code 1, no traceback) even
when -t is shorter than the wait; the run time counts from readiness: a server that starts
after Locust still gets -t of load; bad options are refused before anything runs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from common.waiting import wait_until
from demo.local import LocalTriton, Ports
from loadtest.load_summary import summarize
from samples.bert.contract import DEFAULT_MODEL_NAME
from tests.locust.conftest import (
    STALL_S,
    STALLED_MODELS,
    WRONG_SHAPE_MODEL,
    finish,
    inference_counts,
    run_locust,
    start_locust,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("protocol", "options"),
    [
        ("binary", ()),
        ("json", ("--model-version", "1")),  # /v2/models/bert/versions/1/...
        ("grpc", ("--batch-size", "3")),  # answers of [3, 128, 2]
    ],
)
def test_constant_rate_is_reached_without_failures(
    triton: LocalTriton, tmp_path: Path, protocol: str, options: tuple[str, ...]
) -> None:
    target = 40
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        *options,
        "--protocol",
        protocol,
        "--grpc-url",
        triton.grpc_url,
        "--load-shape",
        "constant",
        "--target-qps",
        str(target),
        "-t",
        # Locust's clock starts before the users connect: 6 s keeps a slow first connection
        # on a busy 2-core runner from reading as a missed rate.
        "6s",
    )
    summary = summarize(run.stats)
    assert run.returncode == 0, run.output
    assert summary.failures == 0
    assert summary.requests >= 5 * target
    assert 0.9 * target <= summary.qps <= 1.3 * target, summary
    assert "summary" in run.output and "rate" in run.output


def test_wrong_outputs_are_failures(triton: LocalTriton, tmp_path: Path) -> None:
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        "--model-name",
        WRONG_SHAPE_MODEL,
        "--load-shape",
        "constant",
        "--target-qps",
        "20",
        "-t",
        "2s",
    )
    summary = summarize(run.stats)
    assert run.returncode == 1, run.output
    assert summary.requests > 0
    assert summary.failures == summary.requests
    assert "cls_squad_logits has shape [1, 128, 3], expected [1, 128, 2]" in run.output


@pytest.mark.parametrize(
    ("protocol", "timeout_message"),
    [("http", r"timed out|[Tt]imeout"), ("grpc", r"Deadline ?Exceeded")],
)
def test_a_stalled_server_counts_as_failures(
    triton: LocalTriton, tmp_path: Path, protocol: str, timeout_message: str
) -> None:
    """Each answer comes after STALL_S, well within Locust's own 60 s: only the locustfile's
    --request-timeout makes the stall a failure."""
    started = time.monotonic()
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        "--model-name",
        STALLED_MODELS[protocol],
        "--protocol",
        "grpc" if protocol == "grpc" else "binary",
        "--grpc-url",
        triton.grpc_url,
        "--request-timeout",
        str(STALL_S / 4),
        "--load-shape",
        "constant",
        "--target-qps",
        "4",
        "-t",
        "3s",
        timeout_s=60,
    )
    summary = summarize(run.stats)
    assert run.returncode == 1, run.output
    assert summary.requests > 0
    assert summary.failures == summary.requests, summary
    assert re.search(timeout_message, run.output), run.output
    # Cut off at the timeout: no request took the stall's length.
    assert summary.p99_ms < 1000 * STALL_S, summary
    assert time.monotonic() - started < 45


FIRST_REQUESTS = 10
"""Successes a run has before its server is stopped (half a second at 20 QPS)."""


def test_server_stopped_mid_run_ends_cleanly(model_repository: Path, tmp_path: Path) -> None:
    server = LocalTriton(model_repository=str(model_repository), workdir=tmp_path / "triton")

    def successes() -> int:
        return inference_counts(server, DEFAULT_MODEL_NAME)[0]

    with server:
        before = successes()  # the server's own warm-up counts too
        process = start_locust(
            server.http_url,
            tmp_path / "stats",
            "--load-shape",
            "constant",
            "--target-qps",
            "20",
            "-t",
            "8s",
        )
        # Some load served first: Locust's start takes from 1.5 s to several on a loaded machine.
        served = wait_until(
            lambda: process.poll() is None and successes() >= before + FIRST_REQUESTS,
            timeout_s=30,
            interval_s=0.1,
        )
        assert served, (process.poll(), server.log_tail())
        # Killed, as by a node loss: on SIGTERM alone Triton keeps serving open connections
        # while requests are in flight (its drain), so steady load would see no failure.
        server.stop(timeout_s=0)
        run = finish(process, tmp_path / "stats", timeout_s=30)
    summary = summarize(run.stats)
    assert run.returncode == 1, run.output
    assert 0 < summary.failures < summary.requests, summary
    assert re.search(r"failures +[1-9]\d* ", run.output)
    assert "Connection refused" in run.output or "Connection reset" in run.output


def test_steps_climb_then_stop_at_run_time(triton: LocalTriton, tmp_path: Path) -> None:
    # Four steps of 1.8 s; the run time (7 s) ends the last one early. Locust asks the shape
    # about once a second, a little over (it sleeps a second after each answer), so each step
    # is longer than that and every step is seen; the 2 s steps left the fourth one second,
    # and a tick at 5.99 s and the next at 7.01 s skipped it.
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        "--load-shape", "steps", "--target-qps", "40", "--step-seconds", "1.8",
        "--user-qps", "10", "-t", "7s",
    )  # fmt: skip
    assert run.returncode == 0, run.output
    updates = [int(n) for n in re.findall(r"Shape test updating to (\d+) users", run.output)]
    assert updates == [1, 2, 3, 4]
    assert "Shape test stopping" in run.output
    assert summarize(run.stats).failures == 0


def test_unknown_model_is_reported_not_loaded(triton: LocalTriton, tmp_path: Path) -> None:
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        "--model-name",
        "no_such_model",
        "--ready-timeout",
        "2",
        "-t",
        "5s",
    )
    assert run.returncode == 1
    assert "/v2/models/no_such_model/ready was not ready within 2 s" in run.output
    assert summarize(run.stats).requests == 0


def test_a_run_shorter_than_the_wait_fails_with_the_wait_message(
    triton: LocalTriton, tmp_path: Path
) -> None:
    """-t 1s and a model that never becomes ready: the run lasts the whole wait, then fails
    with the wait's message, no request sent and no traceback (it used to pass, sending
    nothing, once -t had passed)."""
    started = time.monotonic()
    run = run_locust(
        triton.http_url,
        tmp_path / "stats",
        "--model-name", "no_such_model", "--ready-timeout", "4",
        "--load-shape", "constant", "--target-qps", "5", "-t", "1s",
    )  # fmt: skip
    assert run.returncode == 1, run.output
    assert "/v2/models/no_such_model/ready was not ready within 4 s" in run.output
    assert "no request was sent: " in run.output
    assert "Traceback" not in run.output and "AttributeError" not in run.output, run.output
    assert summarize(run.stats).requests == 0
    assert time.monotonic() - started >= 4


def test_the_run_time_counts_from_readiness(model_repository: Path, tmp_path: Path) -> None:
    """Locust starts first; Triton starts on its ports a while later (its start takes several
    seconds): the load still lasts -t from the moment the model is ready."""
    ports = Ports.free()
    server = LocalTriton(
        model_repository=str(model_repository), workdir=tmp_path / "triton", ports=ports
    )
    process = start_locust(
        f"http://127.0.0.1:{ports.http}",
        tmp_path / "stats",
        "--ready-timeout", "60", "--load-shape", "constant", "--target-qps", "20", "-t", "3s",
    )  # fmt: skip
    try:
        time.sleep(2)  # Locust is up and waiting
        with server:
            run = finish(process, tmp_path / "stats", timeout_s=90)
            server.stop(timeout_s=0)  # Locust is done: no drain or unload to wait for
    finally:
        process.kill()
    summary = summarize(run.stats)
    assert run.returncode == 0, run.output
    assert "waiting for http://127.0.0.1:" in run.output
    # 3 s at 20 a second from readiness (the users start within the first second).
    assert summary.requests >= 40 and summary.failures == 0, summary


def test_absent_server_is_reported(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{Ports.free().http}"
    run = run_locust(host, tmp_path / "stats", "--ready-timeout", "2", "-t", "5s", timeout_s=30)
    assert run.returncode == 1
    assert f"{host}/v2/health/ready was not ready within 2 s" in run.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seq-len", "4"), "argument --seq-len: must be at least 8, got 4"),
        (("--target-qps", "0"), "argument --target-qps: must be greater than 0, got 0"),
        (("--protocol", "http3"), "argument --protocol: invalid choice: 'http3'"),
        (("--user-qps", "0"), "--user-qps 0 (no wait) sets no rate"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run = run_locust("http://127.0.0.1:9", tmp_path / "stats", *args, "-t", "1s")
    assert run.returncode != 0
    assert message in run.output
