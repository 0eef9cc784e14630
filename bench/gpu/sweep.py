"""The run in order: the repository, the raw network (throughput, then per-batch latency eager
and from CUDA graphs, and the answers every server must give), then each server configuration
served: its answers checked, its points measured by the project's client and, where asked, by
perf_analyzer; the report saved after every figure (a run cut short keeps what it measured)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.gpu import answers, mps, perf_analyzer
from bench.gpu.chart_args import chart_launch, perf_analyzer_args
from bench.gpu.point import run_point
from bench.gpu.raw import load_served_network, measure_batch_latency, measure_raw
from bench.gpu.report import Report, save
from bench.gpu.telemetry import GpuSampler
from bench.gpu.triton_stats import ModelStatistics, admin_headers
from demo.errors import LocalTritonError
from demo.local import LocalTriton
from samples.bert import contract

CONFIG_FLAGS = ("compile", "graphs", "mps", "perf")
DEFAULT_GRAPH_MAX_BATCH = 64
"""The sample's own default (``samples.bert.cuda_graphs.DEFAULT_LARGEST_BUCKET``; imported
there with torch, so checked equal by a test rather than imported here)."""
LOG_PREFIX = "cuda graphs: "
"""The start of the capture report each graphed instance logs (``samples.bert.cuda_graphs``)."""
DEFAULT_POINTS = ((1, 1), (8, 1), (32, 1), (128, 1), (128, 8))
"""Clients x sequences per request: the latency regime, then the large batches it must not
slow down."""


@dataclass(frozen=True)
class ServerConfig:
    """One configuration of the served model; the sweep runs once per configuration."""

    label: str
    """A short name for the table."""
    instances: int = 2
    """GPU model instances (python stub processes)."""
    max_batch_size: int = 256
    """Largest batch dynamic batching may form."""
    queue_delay_us: int = 500
    """``max_queue_delay_microseconds`` of dynamic batching."""
    torch_compile: bool = False
    """Compile the network with ``torch.compile`` at load."""
    cuda_graphs: bool = False
    """Replay batches from CUDA graphs captured per bucket at load."""
    graph_max_batch: int = DEFAULT_GRAPH_MAX_BATCH
    """The largest bucket, with ``cuda_graphs``."""
    perf: bool = False
    """Measure the same points with perf_analyzer too."""
    mps: bool = False
    """Run the server's processes as clients of an MPS daemon (CUDA Multi-Process Service), so
    the instances' kernels share the GPU instead of time-slicing it between CUDA contexts."""


def _graph_flag(flag: str) -> int | None:
    """The largest bucket a ``graphs`` or ``graphs=N`` flag asks for; None for other flags."""
    name, _, value = flag.partition("=")
    if name != "graphs" or (value and not value.isdigit()):
        return None
    return int(value) if value else DEFAULT_GRAPH_MAX_BATCH


def parse_configs(text: str) -> list[ServerConfig]:
    """``label:instances:max_batch:queue_delay_us[:flag]...`` entries, comma separated;
    ``ValueError`` saying how to write one that is not."""
    configs = []
    for entry in text.split(","):
        parts = entry.split(":")
        flags = parts[4:]
        graphs = [g for g in map(_graph_flag, flags) if g is not None]
        known = all(f in CONFIG_FLAGS or _graph_flag(f) for f in flags)
        if len(parts) < 4 or not known or ("compile" in flags and graphs):
            raise ValueError(
                f"--configs entry {entry!r}: write label:instances:max_batch:delay_us, then "
                "optional flags :compile (torch.compile), :graphs or :graphs=N (CUDA graphs "
                "per batch bucket up to N sequences, 64 by default; not with :compile), "
                ":perf (perf_analyzer at the same points) and :mps (an MPS daemon)"
            )
        configs.append(
            ServerConfig(
                label=parts[0],
                instances=int(parts[1]),
                max_batch_size=int(parts[2]),
                queue_delay_us=int(parts[3]),
                torch_compile="compile" in flags,
                cuda_graphs=bool(graphs),
                graph_max_batch=graphs[0] if graphs else DEFAULT_GRAPH_MAX_BATCH,
                perf="perf" in flags,
                mps="mps" in flags,
            )
        )
    return configs


def parse_points(text: str) -> list[tuple[int, int]]:
    """``CLIENTSxSEQUENCES`` entries, comma separated (``1x1,32x1,128x8``); ``ValueError``
    saying how to write one that is not."""
    points = []
    for entry in text.split(","):
        clients, _, sequences = entry.partition("x")
        if not (clients.isdigit() and sequences.isdigit()) or "0" in (clients, sequences):
            raise ValueError(
                f"--points entry {entry!r}: write CLIENTSxSEQUENCES, such as 32x1 (32 clients, "
                "each sending one sequence a request)"
            )
        points.append((int(clients), int(sequences)))
    return points


def sweep_points(args: argparse.Namespace) -> list[tuple[int, int]]:
    """The points to measure: ``--points``; else the grid of ``--seqs-per-request`` and
    ``--concurrency`` where either is given; else ``DEFAULT_POINTS``."""
    if args.points:
        return list(args.points)
    if args.concurrency or args.seqs_per_request:
        return [
            (clients, per_request)
            for per_request in args.seqs_per_request or [1]
            for clients in args.concurrency or [32]
        ]
    return list(DEFAULT_POINTS)


def environment() -> dict[str, str]:
    """Versions and hardware, recorded next to the figures."""
    import torch

    env = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"),
        "cpus": str(os.cpu_count()),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def capture_reports(log: str) -> list[dict[str, Any]]:
    """The capture reports graphed instances logged in a server's ``log``, in order. Triton
    writes a model's message as a JSON string (in quotes, its own quotes escaped); a message
    written plain is read too."""
    reports = []
    for line in log.splitlines():
        start = line.find(LOG_PREFIX)
        if start < 0:
            continue
        message: object = line[start:]
        if start > 0 and line[start - 1] == '"':
            with contextlib.suppress(ValueError):
                message, _ = json.JSONDecoder().raw_decode(line, start - 1)
        if not isinstance(message, str):
            continue
        try:
            reports.append(json.loads(message.removeprefix(LOG_PREFIX)))
        except ValueError:
            continue  # a line that only mentions the prefix
    return reports


def serve_and_sweep(
    config: ServerConfig,
    *,
    repository: Path,
    args: argparse.Namespace,
    report: Report,
    sampler: GpuSampler,
    mps_control: str | None,
    expected: list[answers.ExpectedAnswer],
) -> None:
    """Start Triton for ``config`` as the chart does (behind the chart's MPS launcher, with a
    daemon of its own, where asked), check its answers against ``expected``, and measure
    every point against it (with perf_analyzer too, where the configuration asks), saving the
    report after each point."""
    workdir = args.out / f"server-{config.label}"
    control = mps_control if config.mps else None
    launch = chart_launch(helm=args.helm, args_file=args.chart_args, mps_control=control)
    daemon_env = mps.daemon_environment(workdir) if control else {}
    with contextlib.ExitStack() as stack:
        if control:
            stack.enter_context(mps.quit_on_exit(control, daemon_env))
        server = LocalTriton(
            model_repository=str(repository),
            workdir=workdir,
            container_command=launch.command,
            chart_args=launch.args,
            env={**launch.env, **daemon_env},
            ready_timeout_s=args.ready_timeout,
        )
        started = time.perf_counter()
        stack.enter_context(server)
        report.server_ready_s[config.label] = time.perf_counter() - started
        if config.cuda_graphs:
            captured = capture_reports(server.log_path.read_text(errors="replace"))
            report.server_capture[config.label] = captured
        check = answers.check_served(server.http_url, contract.DEFAULT_MODEL_NAME, expected)
        report.answers[config.label] = check.brief()
        print(
            f"{config.label} ready in {report.server_ready_s[config.label]:.1f} s; answers: "
            f"{check.brief()}",
            flush=True,
        )
        headers = admin_headers(launch.args)
        statistics_reader = ModelStatistics(
            url=server.http_url, model=contract.DEFAULT_MODEL_NAME, headers=headers
        )
        for concurrency, per_request in sweep_points(args):
            report.served.append(
                run_point(
                    url=server.http_url,
                    model=contract.DEFAULT_MODEL_NAME,
                    config=config.label,
                    concurrency=concurrency,
                    sequences_per_request=per_request,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    processes=args.processes,
                    statistics_reader=statistics_reader,
                    instances=config.instances,
                    sampler=sampler,
                )
            )
            save(report, args.out)  # a run cut short still leaves its figures
        if config.perf:
            measure_with_perf_analyzer(
                config, args=args, report=report, url=server.http_url, headers=headers
            )


def measure_with_perf_analyzer(
    config: ServerConfig,
    *,
    args: argparse.Namespace,
    report: Report,
    url: str,
    headers: dict[str, str],
) -> None:
    """perf_analyzer at every point, with the chart Job's arguments; where it cannot run, the
    report says why."""
    program, why = perf_analyzer.find_program(args.perf_analyzer)
    if program is None:
        report.perf_note = why
        print(f"perf_analyzer not run: {why}", flush=True)
        return
    chart_args = perf_analyzer_args(helm=args.helm, args_file=args.chart_args)
    for concurrency, per_request in sweep_points(args):
        point = perf_analyzer.run_point(
            program,
            config=config.label,
            chart_args=chart_args,
            address=url.removeprefix("http://"),
            headers=headers,
            concurrency=concurrency,
            sequences_per_request=per_request,
            workdir=args.out / "perf-analyzer",
            timeout_s=args.perf_timeout,
        )
        report.perf.append(point)
        figures = point.error or (
            f"{point.seq_per_s:9,.0f} seq/s  p50 {point.p50_ms:6.1f} ms  p99 {point.p99_ms:6.1f} ms"
        )
        print(f"perf_analyzer {config.label}: {concurrency} x {per_request}: {figures}", flush=True)
        save(report, args.out)


def run(args: argparse.Namespace) -> Report:
    """Every step of the run the command line asks for; the report, also saved under
    ``args.out``. ``BenchError`` before anything runs where the run cannot be made."""
    import torch

    from samples.bert.build_settings import BuildSettings
    from samples.bert.model_config import render_config
    from samples.bert.repository import write_repository

    # Before anything runs, not after the first configurations.
    mps_control = mps.find_control() if any(c.mps for c in args.configs) else None
    if args.helm is None and args.chart_args is None:
        raise BenchError("pass --helm PATH (renders the chart) or --chart-args FILE")
    if args.device != "gpu" and any(c.cuda_graphs for c in args.configs):
        raise BenchError("CUDA graphs (:graphs) need a GPU: drop :graphs with --device cpu")
    if any(c.perf for c in args.configs):
        perf_analyzer_args(helm=args.helm, args_file=args.chart_args)  # refuses a file without
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(environment=environment())
    sampler = GpuSampler()
    if sampler.unavailable:
        print(f"note: {sampler.unavailable}", flush=True)
    sustained_batches = args.sustained_batches or sorted({c.max_batch_size for c in args.configs})
    repository = args.out / "models"
    all_settings = [
        BuildSettings(
            variant="python",
            repository=repository,
            size=args.size,
            device=args.device,
            cpu_runtime="torch",  # the raw timing loads the same torch weights on a CPU too
            max_batch_size=config.max_batch_size,
            instance_count=config.instances,
            max_queue_delay_us=config.queue_delay_us,
            torch_compile=config.torch_compile,
            cuda_graphs=config.cuda_graphs,
            cuda_graph_max_batch_size=config.graph_max_batch,
            replace=True,
        )
        for config in args.configs
    ]
    graphed = [s.graph_buckets for s in all_settings if s.graphed]
    expected: list[answers.ExpectedAnswer] = []
    for number, (config, settings) in enumerate(zip(args.configs, all_settings, strict=True)):
        if number == 0:
            # The weights are written once; later configurations only change config.pbtxt.
            write_repository(settings)
        else:
            (settings.model_dir / "config.pbtxt").write_text(render_config(settings))
        mode = "compiled" if config.torch_compile else "eager"
        if config.torch_compile:
            report.compiled_configs.add(config.label)
        if config.cuda_graphs:
            report.graphed_configs.add(config.label)
        if mode not in report.raw_seq_per_s:
            print(f"timing the raw {mode} network", flush=True)
            model = load_served_network(
                settings.model_dir / str(settings.version) / "weights",
                gpu=args.device == "gpu",
                compile_network=config.torch_compile,
            )
            raw = measure_raw(
                model,
                batch_sizes=args.raw_batches,
                repeats=args.raw_repeats,
                sustained_batches=sustained_batches,
                sustained_s=args.sustained_seconds or args.seconds,
                gpu=args.device == "gpu",
                sampler=sampler,
            )
            report.raw_seq_per_s[mode] = raw.burst
            report.raw_sustained_seq_per_s[mode] = raw.sustained
            report.raw_gpu.update({f"{mode} {b}": g.brief() for b, g in raw.gpu.items()})
            if mode == "eager":
                latency = measure_batch_latency(
                    model,
                    gpu=args.device == "gpu",
                    batch_sizes=args.latency_batches,
                    repeats=args.raw_repeats,
                    buckets=graphed[0] if graphed else (),
                )
                report.raw_latency_ms["eager"] = latency.eager_ms
                if latency.capture is not None:
                    report.raw_latency_ms["graphed"] = latency.graphed_ms
                    report.capture = asdict(latency.capture)
                expected = answers.expected_answers(model, device=next(model.parameters()).device)
            save(report, args.out)
            del model
            if args.device == "gpu":
                torch.cuda.empty_cache()  # the raw network is gone; give its memory back
        if not expected:  # a compiled configuration first: the answers come from eager
            model = load_served_network(
                settings.model_dir / str(settings.version) / "weights",
                gpu=args.device == "gpu",
                compile_network=False,
            )
            expected = answers.expected_answers(model, device=next(model.parameters()).device)
            del model
        print(f"starting tritonserver for {config}", flush=True)
        try:
            serve_and_sweep(
                config,
                repository=repository,
                args=args,
                report=report,
                sampler=sampler,
                mps_control=mps_control,
                expected=expected,
            )
        except (LocalTritonError, subprocess.SubprocessError) as exc:
            # One configuration that cannot start must not cost the others their figures.
            report.failed_configs[config.label] = str(exc).splitlines()[0][:300]
            print(f"{config.label} failed: {exc}", flush=True)
            save(report, args.out)
    print(save(report, args.out))
    return report
