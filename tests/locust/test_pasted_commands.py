"""The load-test commands a user copies, walked: those the Triton chart's NOTES print for each
ingress mode (as ``helm install`` prints them) and those of the README's "Load testing a
deployment", pasted into a shell, run against an edge standing in for the mode (nginx on
loopback, standins/ingress.py) in front of the real local Triton.

Cases: mode ``none`` (the port-forward: Triton itself, gRPC on its port 8001), ``istio``
(host-routed; with TLS, the gateway's HTTPS port, gRPC over TLS on it with a gRPC host of its
own), ``gatewayApi`` (its gRPC host; with TLS, the listener's HTTPS port): NOTES print one
HTTP and one gRPC command per mode and the README one of each per kind of edge, and each
passes with every answer checked, given only the options of a short headless run and, over
TLS, the server's certificate as ``tls.crt`` (what the NOTES' kubectl line writes) or the
CA's as ``ca.crt`` where a document names it. The locust README's commands are walked the same
way. Each run's command and figures are printed (``-s``).

Where the stand-in differs from the cluster, the variables say so: ``SECURE_INGRESS_PORT`` is
what the NOTES' kubectl line would read; the port-forward's local port 8001 is Triton's gRPC
port here; nginx 1.22 serves cleartext HTTP/2 only on a port of its own, so a cleartext gRPC
command gets that port as ``INGRESS_PORT`` (Istio's gateway serves both on one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from common import processes
from demo.local import LocalTriton
from loadtest.load_summary import summarize
from standins.ingress import NginxIngress, Pki
from tests.conftest import CHART_DIR, HELM_BINARIES, ROOT, _tool
from tests.locust.conftest import GRPC_HOST, HOST

pytestmark = pytest.mark.slow

RUN: Final = ("--headless", "--only-summary", "--ready-timeout", "20", "--load-shape",
              "constant", "--target-qps", "20", "-t", "3s")  # fmt: skip
TLS_SECRET: Final = "triton-tls"
MODES: Final[dict[str, dict[str, Any]]] = {
    "none": {},
    "istio": {"ingress": {"mode": "istio", "host": HOST}},
    "istio-tls": {
        "ingress": {
            "mode": "istio",
            "host": HOST,
            "grpc": {"host": GRPC_HOST},
            "tls": {"enabled": True, "secretName": TLS_SECRET},
        }
    },
    "gatewayApi": {
        "ingress": {
            "mode": "gatewayApi",
            "host": HOST,
            "grpc": {"host": GRPC_HOST},
            "gatewayApi": {"className": "istio"},
        },
        "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
    },
    "gatewayApi-tls": {
        "ingress": {
            "mode": "gatewayApi",
            "host": HOST,
            "grpc": {"host": GRPC_HOST},
            "tls": {"enabled": True, "secretName": TLS_SECRET},
        },
        "networkPolicy": {"proxyOnlySubnet": "10.129.0.0/23"},
    },
}


def _settings(values: dict[str, Any], prefix: str = "") -> list[str]:
    """``--set`` arguments for nested ``values``."""
    settings = []
    for key, value in values.items():
        if isinstance(value, dict):
            settings += _settings(value, f"{prefix}{key}.")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            settings += ["--set", f"{prefix}{key}={text}"]
    return settings


def notes_commands(values: dict[str, Any], tmp_path: Path) -> list[str]:
    """The ``locust`` lines of NOTES as ``helm install`` prints them (Helm 4, client-side)."""
    helm = _tool(*HELM_BINARIES["helm4"])
    command = [str(helm), "install", "demo", str(CHART_DIR), "--dry-run=client", "-n", "serving",
               "--set", "modelRepository=gs://bucket/models", *_settings(values)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    notes = result.stdout.split("NOTES:", 1)[1]
    return [line.strip() for line in notes.splitlines() if line.strip().startswith("locust ")]


DOCUMENTED: Final = {
    "README.md": ("## Load testing a deployment", 6),
    "locust/README.md": ("### Through an ingress: Host, TLS and gRPC", 4),
}
"""Where a document shows the commands (its first bash block after the heading), and how many."""


def documented_commands(document: str) -> list[str]:
    """The ``locust`` commands of ``document``'s block (``DOCUMENTED``), continuation lines
    joined."""
    heading, _ = DOCUMENTED[document]
    section = (ROOT / document).read_text().split(heading, 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, f"{document} has no bash block after {heading!r}"
    joined = match.group(1).replace("\\\n", " ")
    return [" ".join(line.split()) for line in joined.splitlines() if line.startswith("locust ")]


def run_pasted(
    command: str, *, env: dict[str, str], cwd: Path, stats: Path, tls: bool
) -> tuple[int, str]:
    """``command`` as a shell runs it in ``cwd`` (where ``locust/`` leads to the repository's
    and ``tls.crt`` is the server's certificate), with a short headless run's options."""
    extra = [*RUN, "--json-file", str(stats)]
    if tls and "--ca-file" not in command:
        extra += ["--ca-file", "tls.crt"]
    process = subprocess.Popen(
        ["bash", "-c", f"{command} {' '.join(extra)}"],
        cwd=cwd,
        env={**os.environ, **env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, killed = processes.finish(process, timeout_s=90)
    assert not killed, f"{command} did not finish: {output}"
    return process.returncode, output or ""


@pytest.fixture
def workdir(tmp_path: Path, pki: Pki) -> Path:
    """A folder to paste into: the repository's ``locust/``, the Secret's ``tls.crt`` (the
    server's certificate) and the CA's ``ca.crt``."""
    folder = tmp_path / "shell"
    folder.mkdir()
    (folder / "locust").symlink_to(ROOT / "locust")
    shutil.copyfile(pki.certificate, folder / "tls.crt")
    shutil.copyfile(pki.ca, folder / "ca.crt")
    return folder


def _environment(
    command: str, triton: LocalTriton, ingress: NginxIngress
) -> tuple[str, dict[str, str]]:
    """The command and the variables the stand-in gives it (see the module's docstring)."""
    grpc = "--protocol grpc" in command
    env = {"INGRESS_HOST": "127.0.0.1", "SECURE_INGRESS_PORT": str(ingress.ports["tls"])}
    if ":8001" in command or "--host-header" not in command:  # Triton's own ports
        env["INGRESS_PORT"] = triton.http_url.rsplit(":", 1)[1]
        command = command.replace(":8001", ":" + triton.grpc_url.rsplit(":", 1)[1])
    else:
        env["INGRESS_PORT"] = str(ingress.ports["grpc" if grpc else "http"])
    return command, env


def _check(name: str, command: str, code: int, output: str, stats: Path) -> None:
    summary = summarize(json.loads(stats.read_text()))
    print(
        f"\n{name}: {command}\n  requests {summary.requests}, failures {summary.failures}, "
        f"p50 {summary.p50_ms:.0f} ms, p99 {summary.p99_ms:.0f} ms"
    )
    assert code == 0, f"{command}\n{output}"
    assert summary.requests >= 30 and summary.failures == 0, summary


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_notes_commands_pass_through_the_edge(
    triton: LocalTriton, ingress: NginxIngress, workdir: Path, tmp_path: Path, mode: str
) -> None:
    values: dict[str, Any] = MODES[mode]
    if mode == "gatewayApi-tls":  # the listener's port, as the Gateway would have it
        https_port = {"gatewayApi": {"httpsPort": ingress.ports["tls"]}}
        values = {**values, "ingress": {**values["ingress"], **https_port}}
    commands = notes_commands(values, tmp_path)
    assert len(commands) == 2 and "--protocol grpc" in commands[1], commands
    for protocol, printed in zip(("http", "grpc"), commands, strict=True):
        command, env = _environment(printed, triton, ingress)
        stats = tmp_path / protocol
        code, output = run_pasted(
            command, env=env, cwd=workdir, stats=stats, tls=mode.endswith("-tls")
        )
        _check(f"NOTES {mode} {protocol}", printed, code, output, stats.with_suffix(".json"))


@pytest.mark.parametrize("document", sorted(DOCUMENTED))
def test_the_documented_commands_pass_through_the_edge(
    triton: LocalTriton, ingress: NginxIngress, workdir: Path, tmp_path: Path, document: str
) -> None:
    commands = documented_commands(document)
    assert len(commands) == DOCUMENTED[document][1], commands
    for index, printed in enumerate(commands):
        command, env = _environment(printed, triton, ingress)
        stats = tmp_path / f"command-{index}"
        code, output = run_pasted(
            command, env=env, cwd=workdir, stats=stats, tls="https://" in command
        )
        _check(f"{document} {index}", printed, code, output, stats.with_suffix(".json"))
