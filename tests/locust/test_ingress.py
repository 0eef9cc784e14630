"""The load test through a real edge: Debian's nginx on loopback in front of the real local
Triton (standins/ingress.py), the real locustfile run by the real Locust, headless and
bounded, over HTTP (binary tensors) and gRPC.

Cases: through an edge without host routing, an exact-host route (``--host-header``) and TLS
terminated at the edge (``-H https://``, ``--ca-file``; gRPC over TLS on the HTTPS port, the
default target for an https ``-H``), every run passes with every answer checked, and the edge
saw the requests for that host (each run's figures are printed, see ``-s``); a wrong host
fails the run in the readiness wait (the edge's 404 in the message, no request, no
traceback); a route lost mid-run (the ingress's host changed, nginx reloaded) makes the
requests after it failures that fail the run; a certificate from an unknown CA, or
self-signed, is refused at once (the message says what to give), and accepted with
``--ca-file`` (the CA, or the self-signed certificate itself); ``--insecure`` passes a
certificate that is neither trusted nor issued for the host, and says so at the start, in
the summary and in its JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Final

import pytest

from demo.local import LocalTriton
from loadtest.load_summary import LoadSummary, summarize
from standins.ingress import NginxIngress, Pki
from tests.locust.conftest import (
    GRPC_HOST,
    HOST,
    UNCOVERED_HOST,
    LocustRun,
    finish,
    require_nginx,
    run_locust,
    start_locust,
)

pytestmark = pytest.mark.slow

PROTOCOLS: Final = ("binary", "grpc")
LOAD: Final = ("--load-shape", "constant", "--target-qps", "20", "-t", "4s")


def _figures(name: str, summary: LoadSummary) -> None:
    """One line per run for the record (pytest -s shows them)."""
    print(
        f"\nfigures {name}: requests {summary.requests}, failures {summary.failures}, "
        f"p50 {summary.p50_ms:.0f} ms, p99 {summary.p99_ms:.0f} ms"
    )


def _no_load(run: LocustRun) -> None:
    """The run failed without load and without a traceback."""
    assert run.returncode == 1, run.output
    assert summarize(run.stats).requests == 0
    assert "no request was sent" in run.output
    assert "Traceback" not in run.output, run.output


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mode", ["plain", "host-routed", "tls"])
def test_the_right_host_passes_through_the_edge(
    ingress: NginxIngress, pki: Pki, tmp_path: Path, mode: str, protocol: str
) -> None:
    args: list[str] = ["--protocol", protocol]
    if mode == "plain":
        host, host_header = ingress.url("open"), "127.0.0.1"
        args += ["--grpc-url", ingress.address("open_grpc")]
    elif mode == "host-routed":
        host, host_header = ingress.url("http"), HOST
        args += ["--host-header", HOST, "--grpc-url", ingress.address("grpc")]
    else:  # gRPC goes to the HTTPS port, over TLS: the default for an https -H
        host, host_header = ingress.url("tls", scheme="https"), HOST
        args += ["--host-header", HOST, "--ca-file", str(pki.ca)]
    before = ingress.requests_logged(200, host_header)
    run = run_locust(host, tmp_path / "stats", *args, *LOAD)
    summary = summarize(run.stats)
    _figures(f"{protocol} {mode}", summary)
    assert run.returncode == 0, run.output
    assert summary.requests >= 40 and summary.failures == 0, summary
    # The edge answered them (and the readiness probes) for that host.
    assert ingress.requests_logged(200, host_header) - before >= summary.requests + 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_wrong_host_fails_the_run(ingress: NginxIngress, tmp_path: Path, protocol: str) -> None:
    before = ingress.requests_logged(404, "other.test")
    run = run_locust(
        ingress.url("http"),
        tmp_path / "stats",
        "--protocol", protocol, "--host-header", "other.test",
        "--grpc-url", ingress.address("grpc"),
        # A wait longer than the run: the run still fails, with the wait's message.
        "--ready-timeout", "3", *LOAD[:-1], "1s",
    )  # fmt: skip
    _no_load(run)
    assert ingress.requests_logged(404, "other.test") > before
    if protocol == "grpc":
        assert "gRPC ServerReady at 127.0.0.1:" in run.output
        assert "authority other.test) was not ready within 3 s" in run.output
        assert "404" in run.output
    else:
        assert "/v2/health/ready was not ready within 3 s (last answer: HTTP 404)" in run.output
        assert "(sent: Host: other.test)" in run.output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_route_lost_mid_run_counts_as_failures(
    triton: LocalTriton, pki: Pki, tmp_path: Path, protocol: str
) -> None:
    """The ingress's host changes under load (nginx reloaded with another server_name): the
    requests after it are answered 404 by the edge and fail the run."""
    require_nginx()
    with NginxIngress(triton=triton, workdir=tmp_path / "nginx", hosts=[HOST], pki=pki) as edge:
        process = start_locust(
            edge.url("http"),
            tmp_path / "stats",
            "--protocol", protocol, "--host-header", HOST, "--grpc-url", edge.address("grpc"),
            *LOAD[:-1], "8s",
        )  # fmt: skip
        deadline = time.monotonic() + 40
        while edge.requests_logged(200, HOST) < 30 and process.poll() is None:
            assert time.monotonic() < deadline, "no load reached the edge"
            time.sleep(0.2)
        edge.route(["moved.test"])
        run = finish(process, tmp_path / "stats", timeout_s=60)
        answered_404 = edge.requests_logged(404, HOST)
    summary = summarize(run.stats)
    assert run.returncode == 1, run.output
    assert 0 < summary.failures < summary.requests, summary
    assert answered_404 >= summary.failures > 0
    assert ("HTTP 404" if protocol == "binary" else "404") in run.output
    assert "Traceback" not in run.output


CERTIFICATES: Final = {"private CA": "tls", "self-signed": "tls_self_signed"}
"""Which listener presents which kind of certificate."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("certificate", sorted(CERTIFICATES))
def test_an_untrusted_certificate_is_refused_at_once(
    ingress: NginxIngress, tmp_path: Path, certificate: str, protocol: str
) -> None:
    started = time.monotonic()
    run = run_locust(
        ingress.url(CERTIFICATES[certificate], scheme="https"),
        tmp_path / "stats",
        "--protocol", protocol, "--host-header", HOST, "--ready-timeout", "30", *LOAD,
    )  # fmt: skip
    _no_load(run)
    assert f"the certificate presented for {HOST} is not trusted" in run.output
    assert "give the CA that issued it with --ca-file" in run.output
    # Refused on the first answer, not after the 30 s wait: waiting cannot help.
    assert time.monotonic() - started < 25


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_self_signed_certificate_is_trusted_with_ca_file(
    ingress: NginxIngress, pki: Pki, tmp_path: Path, protocol: str
) -> None:
    run = run_locust(
        ingress.url("tls_self_signed", scheme="https"),
        tmp_path / "stats",
        "--protocol", protocol, "--host-header", HOST, "--ca-file", str(pki.self_signed),
        *LOAD,
    )  # fmt: skip
    summary = summarize(run.stats)
    assert run.returncode == 0, run.output
    assert summary.requests >= 40 and summary.failures == 0, summary


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_certificate_for_another_name_is_refused(
    ingress: NginxIngress, pki: Pki, tmp_path: Path, protocol: str
) -> None:
    """The edge routes the host, but its certificate is not issued for it."""
    run = run_locust(
        ingress.url("tls", scheme="https"),
        tmp_path / "stats",
        "--protocol", protocol, "--host-header", UNCOVERED_HOST, "--ca-file", str(pki.ca),
        *LOAD,
    )  # fmt: skip
    _no_load(run)
    assert f"the certificate presented for {UNCOVERED_HOST} is not trusted" in run.output
    assert ("Hostname mismatch" if protocol == "binary" else "Hostname Verification") in (
        run.output
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_insecure_skips_the_check_and_says_so(
    ingress: NginxIngress, tmp_path: Path, protocol: str
) -> None:
    """Neither trusted (no --ca-file) nor issued for the host sent, and still answered."""
    summary_file = tmp_path / "summary.json"
    run = run_locust(
        ingress.url("tls", scheme="https"),
        tmp_path / "stats",
        "--protocol", protocol, "--host-header", UNCOVERED_HOST, "--insecure",
        "--summary-file", str(summary_file), *LOAD,
    )  # fmt: skip
    summary = summarize(run.stats)
    assert run.returncode == 0, run.output
    assert summary.requests >= 40 and summary.failures == 0, summary
    assert "WARNING/bert_load: --insecure: the server's certificate is NOT checked" in run.output
    assert "TLS       certificates NOT checked (--insecure)" in run.output
    assert json.loads(summary_file.read_text())["insecure"] is True
    assert ingress.requests_logged(200, UNCOVERED_HOST) >= summary.requests


def test_grpc_authority_apart_from_the_host_header(
    ingress: NginxIngress, pki: Pki, tmp_path: Path
) -> None:
    """As with the Gateway API mode, where gRPC has a host of its own."""
    before = ingress.requests_logged(200, GRPC_HOST)
    run = run_locust(
        ingress.url("tls", scheme="https"),
        tmp_path / "stats",
        "--protocol", "grpc", "--host-header", HOST, "--grpc-authority", GRPC_HOST,
        "--ca-file", str(pki.ca), *LOAD,
    )  # fmt: skip
    summary = summarize(run.stats)
    assert run.returncode == 0, run.output
    assert summary.failures == 0 and summary.requests >= 40, summary
    assert ingress.requests_logged(200, GRPC_HOST) - before >= summary.requests
