"""``make demo`` (``python -m demo``): each step, and whole runs with real components.

Cases (the chart's container resolution is covered in test_local.py): a helm failure and a
missing helm end the demo with exit 1 and a message saying why; bad --seconds/--qps exit 2
before anything runs;
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

import pytest

from demo.run import main, parse_settings

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_FIELDS = {"requests", "failures", "qps", "p50_ms", "p95_ms", "p99_ms", "insecure"}


def test_helm_failure_is_reported(
    helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "no-chart"
    code = main(["--helm", str(helm), "--chart", str(chart), "--out", str(tmp_path / "out")])
    assert code == 1
    assert f"demo failed: {chart} is not a Helm chart" in capsys.readouterr().out


def test_a_missing_helm_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--helm", str(tmp_path / "helm"), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "run `make tools`" in capsys.readouterr().out


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
        [sys.executable, "-m", "demo", "--out", str(out), *args],
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
