"""``make soak`` (``python -m demo.soak``): per-minute figures of the demo's server under load.

Cases: the joining of each minute's load figures with the memory sampled in it (the per-minute
plugin, demo/soak_minutes.py, runs inside Locust, so only the whole run tests it); the table has
one row per minute; bad --minutes/--qps exit 2; a short whole run (real sample, real
tritonserver, real Locust with the per-minute plugin) exits 0 and writes soak.json and soak.csv
with one row per minute holding requests, QPS, p50/p95/p99 and the server's and stubs' resident
memory, and prints the table.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo.soak import MemorySample, join_minutes, main, table

ROOT = Path(__file__).resolve().parents[2]


def test_each_minute_gets_the_memory_sampled_within_it() -> None:
    line = {
        "minute": 0,
        "start_unix": 1000.0,
        "seconds": 60.0,
        "requests": 600,
        "failures": 1,
        "qps": 10.0,
        "p50_ms": 5.0,
        "p95_ms": 9.0,
        "p99_ms": 12.0,
    }
    samples = [
        MemorySample(995.0, 40.0, 90.0),  # before the load
        MemorySample(1030.0, 60.0, 100.0),
        MemorySample(1055.0, 58.0, 101.0),
        MemorySample(1070.0, 70.0, 120.0),  # the next minute
    ]
    (minute,) = join_minutes([line], samples)
    assert (minute.server_rss_mib, minute.stubs_rss_mib) == (58.0, 101.0)
    assert minute.peak_total_rss_mib == 160.0
    assert (minute.requests, minute.failures, minute.p99_ms) == (600, 1, 12.0)
    header, row = table([minute])
    assert "p95 ms" in header and "server MiB" in header
    assert row.split()[:4] == ["0", "60", "600", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "0"], "--minutes must be above 0"),
        (["--qps", "-1"], "--qps must be greater than 0"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_short_soak_run(tmp_path: Path, helm4: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.soak",
            "--minutes",
            "0.15",
            "--qps",
            "20",
            "--helm",
            str(helm4),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["settings"] == {"minutes": 0.15, "qps": 20.0}
    (minute,) = report["minutes"]  # nine seconds: one partial minute
    assert minute["requests"] >= 100 and minute["failures"] == 0
    assert 0 < minute["p50_ms"] <= minute["p95_ms"] <= minute["p99_ms"]
    assert minute["server_rss_mib"] > 10 and minute["stubs_rss_mib"] > 10
    with (tmp_path / "soak.csv").open() as rows:
        assert [int(r["requests"]) for r in csv.DictReader(rows)] == [minute["requests"]]
    assert "server MiB" in output and "stubs MiB" in output
