"""The GPU serving benchmark's harness, run on the CPU with the tiny network.

The figures it reports on an H200 or H100 live in docs/benchmarks.md; here the harness itself
is checked: configuration parsing with its flags (compile, graphs with or without a largest
bucket, perf, mps) and its errors (a ValueError, not an exit), points and their default (the
latency regime), the served/raw ratio taken against the raw network of the same kind (eager or
compiled) and the latency ratio against the raw batch runner of the same kind (graphed or
eager), the MPS flag and the clear stop (exit 2) where the MPS control program is missing, and
where a configuration asks for CUDA graphs on the CPU, the admin header read from the chart's
restricted-API flag, Triton's counters turned into batch size, busy share, queue, compute and
in-server times, the capture reports read back from a server's log, perf_analyzer's arguments
made from the chart's own test Job and its CSV read, the file ``--save-chart-args`` writes for a
machine without helm (the MPS launcher's control path replaced by the one found there), and one
whole short run of the command line (repository written by the sample's writer, burst and
sustained raw timing, per-batch latency through the model's batch runner, the real local Triton
behind the chart's restricted APIs, its answers checked request by request against the eager
network, several client processes, every response checked) that ends with no failures, the
server's counters and a report on disk, for a plain configuration and one behind MPS: that
server is started by the chart's own MPS launcher (a stand-in control program records the
daemon's start in the server's own folders, and its quit once the server is gone); perf_analyzer
is asked for there and, missing on this machine, the report says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.gpu import chart_args, cli, mps, perf_analyzer, sweep
from bench.gpu.perf_analyzer import PerfPoint
from bench.gpu.report import Report, ServedPoint
from bench.gpu.sweep import ServerConfig, parse_configs, parse_points
from bench.gpu.triton_stats import admin_headers, counters_between
from deployer.render import render


def test_configurations_parse() -> None:
    assert parse_configs("g:1:64:0:graphs:perf,h:2:256:0:graphs=32:mps") == [
        ServerConfig(
            label="g",
            instances=1,
            max_batch_size=64,
            queue_delay_us=0,
            cuda_graphs=True,
            graph_max_batch=64,
            perf=True,
        ),
        ServerConfig(
            label="h",
            instances=2,
            max_batch_size=256,
            queue_delay_us=0,
            cuda_graphs=True,
            graph_max_batch=32,
            mps=True,
        ),
    ]
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


@pytest.mark.parametrize(
    "entry", ["a:2:256", "a:2:256:0:fast", "a:1:64:0:graphs=big", "a:1:64:0:graphs:compile"]
)
def test_a_malformed_configuration_says_how_to_write_it(entry: str) -> None:
    with pytest.raises(ValueError, match=r"label:instances:max_batch:delay_us.*:mps"):
        parse_configs(entry)


def test_the_graph_defaults_are_the_samples() -> None:
    from samples.bert import cuda_graphs

    assert sweep.DEFAULT_GRAPH_MAX_BATCH == cuda_graphs.DEFAULT_LARGEST_BUCKET
    assert sweep.LOG_PREFIX == cuda_graphs.LOG_PREFIX


def test_points_parse_and_default_to_the_latency_regime() -> None:
    assert parse_points("1x1,32x1,128x8") == [(1, 1), (32, 1), (128, 8)]
    for entry in ("32", "0x1", "ax1", "4x"):
        with pytest.raises(ValueError, match="write CLIENTSxSEQUENCES"):
            parse_points(entry)
    args = cli._parser().parse_args([])
    assert sweep.sweep_points(args) == [(1, 1), (8, 1), (32, 1), (128, 1), (128, 8)]
    grid = cli._parser().parse_args(["--concurrency=4,8", "--seqs-per-request=1,2"])
    assert sweep.sweep_points(grid) == [(4, 1), (8, 1), (4, 2), (8, 2)]


def test_graphs_on_the_cpu_stop_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [f"--out={tmp_path / 'out'}", "--device=cpu", "--configs=g:1:8:0:graphs", "--helm=x"]
    )
    assert code == 2
    assert "CUDA graphs (:graphs) need a GPU" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


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
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no perf_analyzer here
    out = tmp_path / "out"
    code = cli.main(
        [
            "--device=cpu",
            "--size=tiny",
            f"--out={out}",
            "--raw-batches=1,4",
            "--raw-repeats=3",
            "--latency-batches=1,2",
            "--points=2x2",
            "--seconds=2",
            "--warmup=2",  # a fresh server's first, slow requests stay out of the window
            "--processes=1",
            "--configs=cpu:1:8:0:perf,cpu-mps:1:8:0:mps",
            "--ready-timeout=120",
            f"--helm={helm4}",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["raw_seq_per_s"]["eager"]) == {"1", "4"}
    assert set(report["raw_sustained_seq_per_s"]["eager"]) == {"8"}  # the config's max batch
    assert set(report["raw_latency_ms"]) == {"eager"}  # no graphs on a CPU
    assert set(report["raw_latency_ms"]["eager"]) == {"1", "2"}
    assert report["failed_configs"] == {}
    assert [point["config"] for point in report["served"]] == ["cpu", "cpu-mps"]
    for point in report["served"]:
        assert point["server"]["sequences_per_batch"] >= 1  # read with the chart's admin key
        assert point["server"]["request_ms"] > 0
        assert point["failures"] == 0, point["first_failure"]
        assert point["requests"] > 0
        assert point["seq_per_s"] > 0
    for label in ("cpu", "cpu-mps"):
        assert "48 requests in flight together" in report["answers"][label]
        assert report["answers"][label].endswith("all right"), report["answers"][label]
        assert report["server_ready_s"][label] > 0
    assert report["perf_analyzer_note"].startswith("perf_analyzer is not on PATH")
    table = (out / "report.md").read_text()
    assert "served/raw" in table
    assert "| 2 x 2 |" in table  # the configurations side by side
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
    requests = inferences // 8

    def spent(ms: int) -> dict[str, int]:
        return {"count": requests, "ns": ms * 1_000_000}

    return {
        "inference_count": inferences,
        "execution_count": executions,
        "inference_stats": {
            "queue": spent(queue_ms),
            "compute_input": spent(queue_ms // 10),
            "compute_infer": spent(queue_ms),
            "compute_output": spent(queue_ms // 10),
            "success": spent(3 * queue_ms),
        },
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
    assert counters.compute_ms == pytest.approx(1.2)  # input, inference and output
    assert counters.request_ms == pytest.approx(3.0)


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


def test_capture_reports_are_read_back_from_the_server_log() -> None:
    log = (
        "I1207 02:00:00.1 12 python_be.cc:1] model loaded\n"
        'I1207 02:00:01.2 13 model.py:99] cuda graphs: {"buckets":[1,2],"total_s":0.5}\n'
        "I1207 02:00:01.3 13 model.py:99] cuda graphs: off\n"
        'I1207 02:00:01.4 14 model.py:99] cuda graphs: {"buckets":[1],"failure":""}\n'
        # As Triton 2.51 writes it (a line of an H100 run): the message quoted, quotes escaped.
        'I1207 08:53:36.072818 1203 bert_cuda_graphs.py:230] "cuda graphs: {\\"buckets\\":'
        '[1,2],\\"seconds\\":{\\"2\\":0.017,\\"1\\":0.017},\\"pool_mib\\":416.0,'
        '\\"failure\\":\\"\\"}"\n'
        'I1207 08:53:36.1 1203 model.py:99] "cuda graphs: off"\n'
    )
    assert sweep.capture_reports(log) == [
        {"buckets": [1, 2], "total_s": 0.5},
        {"buckets": [1], "failure": ""},
        {"buckets": [1, 2], "seconds": {"2": 0.017, "1": 0.017}, "pool_mib": 416.0, "failure": ""},
    ]


def _chart_job_args(helm4: Path) -> list[str]:
    values = {"modelRepository": "gs://bucket/models", "perfAnalyzer": {"enabled": True}}
    objects = render(helm=helm4, chart=chart_args.CHART, release="r", namespace="n", values=values)
    return perf_analyzer.job_args(objects)


def test_perf_analyzer_runs_with_the_chart_jobs_arguments_at_each_point(
    helm4: Path, tmp_path: Path
) -> None:
    job = _chart_job_args(helm4)
    assert "--measurement-interval=5000" in job and "-H" in job
    args = perf_analyzer.local_args(
        job,
        address="127.0.0.1:8123",
        headers={"triton-admin-key": "k3y"},
        concurrency=32,
        sequences_per_request=8,
        csv_file=tmp_path / "p.csv",
    )
    assert args == [
        "-m",
        "bert",
        "-u",
        "127.0.0.1:8123",
        "-i",
        "http",
        "-b",
        "8",
        "--concurrency-range=32:32",
        "--measurement-interval=5000",
        f"--input-data={perf_analyzer.CHART_INPUTS}",
        "-H",
        "triton-admin-key:k3y",
        "-f",
        str(tmp_path / "p.csv"),
    ]
    assert perf_analyzer.CHART_INPUTS.is_file()


def test_perf_analyzers_csv_is_read_in_milliseconds() -> None:
    # The columns perf_analyzer writes with -f (times in microseconds), then extra ones.
    text = (
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
        "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
        "p50 latency,p90 latency,p95 latency,p99 latency,Avg latency\n"
        "32,4012.5,20,300,150,40,5000,60,10,6100,7000,7500,9200,6200\n"
    )
    assert perf_analyzer.parse_csv(text) == {
        "seq_per_s": 4012.5,
        "p50_ms": 6.1,
        "p99_ms": 9.2,
        "queue_ms": 0.15,
        "compute_ms": 5.1,
    }
    with pytest.raises(ValueError, match="no measurement"):
        perf_analyzer.parse_csv("Concurrency,Inferences/Second\n")


def test_a_missing_perf_analyzer_is_said_not_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert perf_analyzer.find_program(None) == (
        None,
        "perf_analyzer is not on PATH (pip install perf-analyzer, or --perf-analyzer)",
    )
    assert perf_analyzer.find_program(tmp_path / "pa") == (None, f"{tmp_path / 'pa'} is not a file")
    broken = tmp_path / "perf_analyzer"
    broken.write_text("#!/bin/sh\necho 'version GLIBC_2.38 not found' >&2\nexit 1\n")
    broken.chmod(0o755)
    point = perf_analyzer.run_point(
        str(broken),
        config="g",
        chart_args=["-m", "bert", "-u", "x:1", "-b", "1"],
        address="127.0.0.1:1",
        headers={},
        concurrency=1,
        sequences_per_request=1,
        workdir=tmp_path / "work",
    )
    assert point.error == "exit 1: version GLIBC_2.38 not found"


def test_the_saved_chart_arguments_serve_a_machine_without_helm(
    helm4: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "chart-args.json"
    code = cli.main([f"--helm={helm4}", f"--save-chart-args={saved}"])
    assert code == 0
    document = json.loads(saved.read_text())
    assert document["perf_analyzer"][:2] == ["-m", "bert"]
    plain = chart_args.chart_launch(helm=None, args_file=saved)
    assert plain.command == ["tritonserver"]
    assert any(arg.startswith("--http-restricted-api=") for arg in plain.args)
    behind_mps = chart_args.chart_launch(helm=None, args_file=saved, mps_control="/opt/bin/mps-ctl")
    script = " ".join(behind_mps.command)
    assert "/opt/bin/mps-ctl -d" in script
    assert "/usr/local/nvidia/bin/nvidia-cuda-mps-control" not in script
    assert chart_args.perf_analyzer_args(helm=None, args_file=saved) == document["perf_analyzer"]


def test_the_report_sets_configurations_side_by_side_with_perf_analyzer() -> None:
    report = Report(
        raw_seq_per_s={"eager": {64: 1000.0}},
        raw_latency_ms={"eager": {1: 8.0}, "graphed": {1: 2.0}},
        graphed_configs={"graphs"},
        served=[
            ServedPoint("eager", 1, 1, 100, 0, 120.0, 8.4, 9.0),
            ServedPoint("graphs", 1, 1, 100, 0, 400.0, 2.5, 3.0),
        ],
        perf=[
            PerfPoint("graphs", 1, 1, seq_per_s=410.0, p50_ms=2.4, p99_ms=2.9),
            PerfPoint("graphs", 8, 1, error="exit 1: no"),
        ],
        capture={
            "buckets": [1, 2],
            "seconds": {"1": 0.1, "2": 0.2},
            "total_s": 0.3,
            "pool_mib": 100.0,
            "device_mib": 120.0,
            "failure": "",
        },
    )
    table = report.markdown()
    assert "| 1 | 8.00 | 2.00 |" in table  # raw eager and graphed ms per batch
    assert "| eager | 1 | 1 | 120 | 0.12 | 8.4 | 9.0 |" in table
    assert table.count("| 1.05 |") == 1  # 8.4 ms over the eager runner's 8.0
    assert "| 1.25 |" in table  # 2.5 ms over the graphed runner's 2.0
    assert "| 1 x 1 | 120 | 8.4 / 9.0 | 400 | 2.5 / 3.0 |" in table
    assert "| graphs | 1 x 1 | 410 | 2.4 | 2.9 | 0.00 | 0.00 | 400 | 2.5 / 3.0 |" in table
    assert "| graphs | 8 x 1 | not measured: exit 1: no |" in table
    assert "2 buckets in 0.30 s (s per bucket: 1: 0.10, 2: 0.20); GPU memory: pool 100" in table
