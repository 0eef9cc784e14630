"""The GPU serving benchmark's harness, run on the CPU with the tiny network.

The figures it reports on an H200 live in docs/benchmarks.md; here the harness itself is
checked: configuration parsing (and its error), the served/raw ratio taken against the raw
network of the same kind (eager or compiled), and one whole short run (repository written by
the sample's writer, raw timing, the real local Triton, several client processes, every
response checked) that ends with no failures and a report on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samples.bert import gpu_benchmark
from samples.bert.gpu_benchmark import Report, ServedPoint, ServerConfig, parse_configs


def test_configurations_parse() -> None:
    assert parse_configs("a:2:256:500,b:1:64:0:compile") == [
        ServerConfig(label="a", instances=2, max_batch_size=256, queue_delay_us=500),
        ServerConfig(
            label="b", instances=1, max_batch_size=64, queue_delay_us=0, torch_compile=True
        ),
    ]


def test_a_malformed_configuration_says_how_to_write_it() -> None:
    with pytest.raises(SystemExit, match="label:instances:max_batch:delay_us"):
        parse_configs("a:2:256")


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


@pytest.mark.slow
def test_a_short_cpu_run_serves_every_request(tmp_path: Path, helm: Path) -> None:
    code = gpu_benchmark.main(
        [
            "--device=cpu",
            "--size=tiny",
            f"--out={tmp_path}",
            "--raw-batches=1,4",
            "--raw-repeats=3",
            "--concurrency=2",
            "--seqs-per-request=2",
            "--seconds=2",
            "--warmup=0.5",
            "--processes=1",
            "--configs=cpu:1:8:0",
            "--ready-timeout=120",
            f"--helm={helm}",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["raw_seq_per_s"]["eager"]) == {"1", "4"}
    (point,) = report["served"]
    assert point["failures"] == 0, point["first_failure"]
    assert point["requests"] > 0
    assert point["seq_per_s"] > 0
    assert "served/raw" in (tmp_path / "report.md").read_text()
