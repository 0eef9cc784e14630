"""``make demo`` (``python -m deployer.demo``): each step, and whole runs with real components.

Cases: the Triton arguments come from the chart rendered by the real helm (3 and 4) and carry
the repository given to the chart; a rendering with no Triton container, or two, is refused; a
helm failure is reported with helm's message; bad --seconds/--qps exit 2 before anything runs;
a short whole run (real sample, real tritonserver, real Locust) exits 0, writes summary.json
with the promised fields and report.html, and leaves no server behind; Ctrl-C in the middle
(SIGINT to the process group, as a terminal sends it) stops the server and exits 130.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployer.demo import DemoError, parse_settings, render_chart, triton_container_args

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_FIELDS = {"requests", "failures", "qps", "p50_ms", "p95_ms", "p99_ms"}


def test_arguments_come_from_the_rendered_chart(helm: Path) -> None:
    objects = render_chart(
        helm=helm, chart=ROOT / "chart", values={"modelRepository": "/srv/models"}
    )
    args = triton_container_args(objects)
    assert "--model-repository=/srv/models" in args
    assert all(arg.startswith("--") for arg in args)


def _deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def test_the_triton_container_is_found_by_its_command() -> None:
    objects = [
        {"kind": "Service"},
        _deployment(
            {"name": "proxy", "command": ["envoy"], "args": ["-c", "x"]},
            {"name": "server", "command": ["tritonserver"], "args": ["--log-verbose=1"]},
        ),
    ]
    assert triton_container_args(objects) == ["--log-verbose=1"]


@pytest.mark.parametrize(
    "objects",
    [
        [{"kind": "Service"}],
        [_deployment({"name": "triton", "args": []}), _deployment({"name": "triton"})],
    ],
    ids=["none", "two"],
)
def test_not_exactly_one_triton_container_is_refused(objects: list[dict[str, Any]]) -> None:
    with pytest.raises(DemoError, match="exactly one Triton container"):
        triton_container_args(objects)


def test_helm_failure_is_reported(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(DemoError, match=r"helm template failed:\n.*not found"):
        render_chart(helm=helm, chart=tmp_path / "no-chart", values={})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seconds", "0"], "--seconds must be 1 or more, got 0"),
        (["--qps", "-5"], "--qps must be greater than 0, got -5.0"),
        (["--qps", "nan"], "--qps must be greater than 0, got nan"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _as_in_a_terminal() -> None:
    # A job started in the background may inherit SIGINT ignored; a terminal's is not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _demo(out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deployer.demo", "--out", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
        preexec_fn=_as_in_a_terminal,
    )


def _server_port(output: str) -> int:
    found = re.search(r"tritonserver is ready at http://127\.0\.0\.1:(\d+)", output)
    assert found, output
    return int(found.group(1))


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_short_demo_run(tmp_path: Path) -> None:
    process = _demo(tmp_path, "--seconds", "3", "--qps", "20")
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == SUMMARY_FIELDS
    assert summary["requests"] >= 40 and summary["failures"] == 0
    assert (tmp_path / "report.html").stat().st_size > 0
    assert _port_closed(_server_port(output))
    assert "Triton arguments from the chart: --model-repository=" in output


@pytest.mark.slow
def test_ctrl_c_stops_the_server(tmp_path: Path) -> None:
    process = _demo(tmp_path, "--seconds", "60", "--qps", "20")
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    for line in process.stdout:
        lines.append(line)
        if "req/s" in line or time.monotonic() > deadline:
            break  # the load is running: the first progress line
    time.sleep(1)
    os.killpg(process.pid, signal.SIGINT)  # the whole group, as Ctrl-C in a terminal does
    rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    assert "interrupted; the server has been stopped" in output
    assert _port_closed(_server_port(output))
