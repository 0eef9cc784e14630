"""The run in order: the repository, the raw network, then each server configuration served
and swept, the report saved after every figure (a run cut short keeps what it measured)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.gpu import mps
from bench.gpu.point import run_point
from bench.gpu.raw import measure_raw
from bench.gpu.report import Report, save
from bench.gpu.telemetry import GpuSampler
from bench.gpu.triton_stats import ModelStatistics, admin_headers
from demo.errors import LocalTritonError
from demo.local import TRITONSERVER, ContainerLaunch, LocalTriton, triton_container_launch
from deployer.render import render
from samples.bert import contract

CHART = Path(__file__).resolve().parents[2] / "chart"
CONFIG_FLAGS = ("compile", "mps")


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
    mps: bool = False
    """Run the server's processes as clients of an MPS daemon (CUDA Multi-Process Service), so
    the instances' kernels share the GPU instead of time-slicing it between CUDA contexts."""


def parse_configs(text: str) -> list[ServerConfig]:
    """``label:instances:max_batch:queue_delay_us[:compile][:mps]`` entries, comma separated;
    ``ValueError`` saying how to write one that is not."""
    configs = []
    for entry in text.split(","):
        parts = entry.split(":")
        flags = parts[4:]
        if len(parts) < 4 or any(f not in CONFIG_FLAGS for f in flags):
            raise ValueError(
                f"--configs entry {entry!r}: write label:instances:max_batch:delay_us, then "
                "optional flags :compile (torch.compile) and :mps (an MPS daemon)"
            )
        configs.append(
            ServerConfig(
                label=parts[0],
                instances=int(parts[1]),
                max_batch_size=int(parts[2]),
                queue_delay_us=int(parts[3]),
                torch_compile="compile" in flags,
                mps="mps" in flags,
            )
        )
    return configs


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


def chart_launch(
    *, helm: Path | None, args_file: Path | None, mps_control: str | None = None
) -> ContainerLaunch:
    """Triton's container as the chart runs it (with ``mps_control``: as it runs it with
    ``gpu.mps.enabled``, its launcher starting that control program): rendered now with
    ``helm``, or read from a file written where helm runs (a GPU machine may have none), either
    a JSON list of the arguments or an object with the container's ``command`` and ``args``."""
    if helm is not None:
        values: dict[str, object] = {"modelRepository": "gs://bucket/models"}
        if mps_control is not None:
            values["gpu"] = {"count": 1, "mps": {"enabled": True, "controlPath": mps_control}}
        objects = render(
            helm=helm, chart=CHART, release="bench", namespace="default", values=values
        )
        return triton_container_launch(objects)
    if args_file is None:
        raise BenchError("pass --helm PATH (renders the chart) or --chart-args FILE")
    document = json.loads(args_file.read_text())
    if isinstance(document, list):
        command, written = [TRITONSERVER], [str(a) for a in document]
    else:
        command = [str(c) for c in document["command"]]
        written = [str(a) for a in document["args"]]
    if mps_control is not None and command == [TRITONSERVER]:
        raise BenchError(
            f"{args_file} holds no MPS launcher: pass --helm, or write the container's command "
            "and args as the chart renders them with gpu.mps.enabled"
        )
    return ContainerLaunch(command=command, args=written, written_args=written, env={})


def serve_and_sweep(
    config: ServerConfig,
    *,
    repository: Path,
    args: argparse.Namespace,
    report: Report,
    sampler: GpuSampler,
    mps_control: str | None,
) -> None:
    """Start Triton for ``config`` as the chart does (behind the chart's MPS launcher, with a
    daemon of its own, where asked) and run every concurrency and request size against it,
    saving the report after each point."""
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
        stack.enter_context(server)
        statistics_reader = ModelStatistics(
            url=server.http_url,
            model=contract.DEFAULT_MODEL_NAME,
            headers=admin_headers(launch.args),
        )
        for per_request in args.seqs_per_request:
            for concurrency in args.concurrency:
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


def run(args: argparse.Namespace) -> Report:
    """Every step of the run the command line asks for; the report, also saved under
    ``args.out``. ``BenchError`` before anything runs where the run cannot be made."""
    from samples.bert.repository import BuildSettings, render_config, write_repository

    # Before anything runs, not after the first configurations.
    mps_control = mps.find_control() if any(c.mps for c in args.configs) else None
    if args.helm is None and args.chart_args is None:
        raise BenchError("pass --helm PATH (renders the chart) or --chart-args FILE")
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(environment=environment())
    sampler = GpuSampler()
    if sampler.unavailable:
        print(f"note: {sampler.unavailable}", flush=True)
    sustained_batches = args.sustained_batches or sorted({c.max_batch_size for c in args.configs})
    repository = args.out / "models"
    for number, config in enumerate(args.configs):
        settings = BuildSettings(
            variant="python",
            repository=repository,
            size=args.size,
            device=args.device,
            cpu_runtime="torch",  # the raw timing loads the same torch weights on a CPU too
            max_batch_size=config.max_batch_size,
            instance_count=config.instances,
            max_queue_delay_us=config.queue_delay_us,
            torch_compile=config.torch_compile,
            replace=True,
        )
        if number == 0:
            # The weights are written once; later configurations only change config.pbtxt.
            write_repository(settings)
        else:
            (settings.model_dir / "config.pbtxt").write_text(render_config(settings))
        mode = "compiled" if config.torch_compile else "eager"
        if config.torch_compile:
            report.compiled_configs.add(config.label)
        if mode not in report.raw_seq_per_s:
            print(f"timing the raw {mode} network", flush=True)
            raw = measure_raw(
                weights=settings.model_dir / str(settings.version) / "weights",
                batch_sizes=args.raw_batches,
                repeats=args.raw_repeats,
                sustained_batches=sustained_batches,
                sustained_s=args.sustained_seconds or args.seconds,
                gpu=args.device == "gpu",
                compile_network=config.torch_compile,
                sampler=sampler,
            )
            report.raw_seq_per_s[mode] = raw.burst
            report.raw_sustained_seq_per_s[mode] = raw.sustained
            report.raw_gpu.update({f"{mode} {b}": g.brief() for b, g in raw.gpu.items()})
            save(report, args.out)
            if args.device == "gpu":
                import torch

                torch.cuda.empty_cache()  # the raw network is gone; give its memory back
        print(f"starting tritonserver for {config}", flush=True)
        try:
            serve_and_sweep(
                config,
                repository=repository,
                args=args,
                report=report,
                sampler=sampler,
                mps_control=mps_control,
            )
        except (LocalTritonError, subprocess.SubprocessError) as exc:
            # One configuration that cannot start must not cost the others their figures.
            report.failed_configs[config.label] = str(exc).splitlines()[0][:300]
            print(f"{config.label} failed: {exc}", flush=True)
            save(report, args.out)
    print(save(report, args.out))
    return report
