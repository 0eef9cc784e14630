"""The GPU serving benchmark's harness, run on the CPU with the tiny network.

The figures it reports on an H200 live in docs/benchmarks.md; here the harness itself is
checked: configuration parsing (and its error, a ValueError, not an exit), the served/raw
ratio taken against the raw network of the same kind (eager or compiled), the MPS flag and the
clear stop (exit 2) where the MPS control program is missing, the admin header read from the
chart's restricted-API flag, Triton's counters turned into batch size, busy share and queue
time, and one whole short run of the command line (repository written by the sample's writer,
burst and sustained raw timing, the real local Triton behind the chart's restricted APIs,
several client processes, every response checked) that ends with no failures, the server's
counters and a report on disk, for a plain configuration and one behind MPS: that server is
started by the chart's own MPS launcher (a stand-in control program records the daemon's start
in the server's own folders, and its quit once the server is gone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.gpu import cli, mps
from bench.gpu.report import Report, ServedPoint
from bench.gpu.sweep import ServerConfig, parse_configs
from bench.gpu.triton_stats import admin_headers, counters_between


def test_configurations_parse() -> None:
    assert parse_configs("a:2:256:500,b:1:64:0:compile,c:4:256:0:compile:mps") == [
        ServerConfig(label="a", instances=2, max_batch_size=256, queue_delay_us=500),
        ServerConfig(
            label="b", instances=1, max_batch_size=64, queue_delay_us=0, torch_compile=True
        ),
        ServerConfig(
            label="c",
            instances=4,
            max_batch_size=256,
            queue_delay_us=0,
            torch_compile=True,
            mps=True,
        ),
    ]


@pytest.mark.parametrize("entry", ["a:2:256", "a:2:256:0:fast"])
def test_a_malformed_configuration_says_how_to_write_it(entry: str) -> None:
    with pytest.raises(ValueError, match=r"label:instances:max_batch:delay_us.*:mps"):
        parse_configs(entry)


def test_mps_without_its_control_program_stops_before_any_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mps, "MPS_SEARCH_PATH", str(tmp_path))
    code = cli.main([f"--out={tmp_path / 'out'}", "--configs=a:2:256:0:mps"])
    assert code == 2
    assert "nvidia-cuda-mps-control is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _point(config: str, seq_per_s: float) -> ServedPoint:
    return ServedPoint(
        config=config,
        concurrency=64,
        sequences_per_request=8,
        requests=100,
        failures=0,
        seq_per_s=seq_per_s,
        p50_ms=1.0,
        p99_ms=2.0,
    )


def test_each_configuration_is_compared_with_the_raw_network_of_its_kind() -> None:
    report = Report(
        raw_seq_per_s={"eager": {64: 900.0, 128: 1000.0}, "compiled": {128: 2000.0}},
        served=[_point("eager", 800.0), _point("fast", 1800.0)],
        compiled_configs={"fast"},
    )
    assert report.raw_for("eager") == 1000.0
    assert report.raw_for("fast") == 2000.0
    table = report.markdown()
    assert "| eager | 64 | 8 | 800 | 0.80 |" in table
    assert "| fast | 64 | 8 | 1,800 | 0.90 |" in table
    assert "served/raw = 0.90" in table


def _stand_in_mps_control(folder: Path, log: Path) -> Path:
    """An ``nvidia-cuda-mps-control`` that records its calls: ``-d`` (start the daemon) with the
    pipe folder it was given, or the command read on its standard input."""
    control = folder / mps.CONTROL
    control.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-d" ]; then echo "start $CUDA_MPS_PIPE_DIRECTORY" >> ' + f"{log}\n"
        'else echo "$(cat) $CUDA_MPS_PIPE_DIRECTORY" >> ' + f"{log}; fi\n"
    )
    control.chmod(0o755)
    return control


@pytest.mark.slow
def test_a_short_cpu_run_serves_every_request(
    tmp_path: Path, helm4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "mps-calls.log"
    _stand_in_mps_control(tmp_path, calls)
    monkeypatch.setattr(mps, "MPS_SEARCH_PATH", str(tmp_path))
    out = tmp_path / "out"
    code = cli.main(
        [
            "--device=cpu",
            "--size=tiny",
            f"--out={out}",
            "--raw-batches=1,4",
            "--raw-repeats=3",
            "--concurrency=2",
            "--seqs-per-request=2",
            "--seconds=2",
            "--warmup=2",  # a fresh server's first, slow requests stay out of the window
            "--processes=1",
            "--configs=cpu:1:8:0,cpu-mps:1:8:0:mps",
            "--ready-timeout=120",
            f"--helm={helm4}",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["raw_seq_per_s"]["eager"]) == {"1", "4"}
    assert set(report["raw_sustained_seq_per_s"]["eager"]) == {"8"}  # the config's max batch
    assert report["failed_configs"] == {}
    assert [point["config"] for point in report["served"]] == ["cpu", "cpu-mps"]
    for point in report["served"]:
        assert point["server"]["sequences_per_batch"] >= 1  # read with the chart's admin key
        assert point["failures"] == 0, point["first_failure"]
        assert point["requests"] > 0
        assert point["seq_per_s"] > 0
    assert "served/raw" in (out / "report.md").read_text()
    pipe = out / "server-cpu-mps" / "mps-pipe"
    assert calls.read_text().splitlines() == [f"start {pipe}", f"quit {pipe}"]
    assert pipe.is_dir()  # made by the chart's launcher


def test_the_statistics_header_comes_from_the_restricted_api_flag() -> None:
    args = [
        "--log-verbose=0",
        "--http-restricted-api=model-repository,statistics,trace:triton-admin-key=s3cr=t",
    ]
    assert admin_headers(args) == {"triton-admin-key": "s3cr=t"}
    assert admin_headers(args, api="logging") == {}
    assert admin_headers(["--log-verbose=0"]) == {}


PARTS = ("compute_input", "compute_infer", "compute_output")


def _stats(inferences: int, executions: int, busy_ms: int, queue_ms: int) -> dict[str, Any]:
    per_part = busy_ms * 1_000_000 // 3
    return {
        "inference_count": inferences,
        "execution_count": executions,
        "inference_stats": {"queue": {"count": inferences // 8, "ns": queue_ms * 1_000_000}},
        "batch_stats": [
            {part: {"count": executions, "ns": per_part} for part in PARTS},
        ],
    }


def test_server_counters_are_differences_over_the_point() -> None:
    before = _stats(inferences=800, executions=10, busy_ms=300, queue_ms=100)
    after = _stats(inferences=8_800, executions=42, busy_ms=3_300, queue_ms=1_100)
    counters = counters_between(before, after, wall_s=2.0, instances=2)
    assert counters.sequences_per_batch == 250.0  # 8,000 sequences in 32 executions
    assert counters.model_busy == pytest.approx(0.75)  # 3 s of 2 instances x 2 s
    assert counters.queue_ms == 1.0  # 1,000 ms over 1,000 requests


def test_the_ratio_is_taken_against_the_sustained_raw_figure_where_measured() -> None:
    report = Report(
        raw_seq_per_s={"eager": {256: 1000.0}},
        raw_sustained_seq_per_s={"eager": {256: 900.0}},
        served=[_point("eager", 855.0)],
    )
    assert report.raw_for("eager") == 900.0
    assert report.raw_for("eager", sustained=False) == 1000.0
    table = report.markdown()
    assert "| 256 | 1,000 | 900 |" in table
    assert "served/raw = 0.95 (against the burst: 0.85)" in table
