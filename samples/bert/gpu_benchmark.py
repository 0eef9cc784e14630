"""Serving efficiency on a GPU: BERT through the local Triton server against the raw network.

One run, one machine, one GPU:

1. writes the ``python``-variant repository (``large``, fp16, GPU instances) with the sample's
   own writer, so the benchmark serves exactly what users deploy;
2. times the raw network in-process at each batch size (CUDA events, median of repeats);
3. starts ``tritonserver`` with the chart's arguments (``deployer.local.LocalTriton``) once per
   server configuration and sweeps client concurrency with several client processes, each an
   asyncio loop speaking the v2 binary tensor protocol (``locust/bert_payload.py``), every
   response checked;
4. prints a Markdown table and writes it with the raw figures to ``--out``.

The figure of merit is served sequences per second over the best raw sequences per second.
Every phase is bounded in time; only loopback receives traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deployer.local import ContainerLaunch, LocalTriton, triton_container_launch
from deployer.render import render
from samples.bert import contract

# The payload module lives beside the locustfile, outside any package (see its docstring).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "locust"))
import bert_payload


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


@dataclass(frozen=True)
class ServedPoint:
    """The served figures at one concurrency and request size."""

    config: str
    concurrency: int
    sequences_per_request: int
    requests: int
    failures: int
    seq_per_s: float
    p50_ms: float
    p99_ms: float
    first_failure: str = ""


@dataclass
class Report:
    """Everything one run measured."""

    raw_seq_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Raw sequences per second by mode (``eager``, ``compiled``) and batch size."""
    served: list[ServedPoint] = field(default_factory=list)
    compiled_configs: set[str] = field(default_factory=set)
    """Labels of the configurations that serve the compiled network."""
    environment: dict[str, str] = field(default_factory=dict)

    def best_raw(self, mode: str = "eager") -> float:
        return max(self.raw_seq_per_s.get(mode, {}).values(), default=0.0)

    def raw_for(self, config: str) -> float:
        """The raw figure a configuration is compared with: the same network, eager or compiled."""
        return self.best_raw("compiled" if config in self.compiled_configs else "eager")

    def best_served(self, config: str | None = None) -> ServedPoint | None:
        points = [
            p for p in self.served if p.failures == 0 and (config is None or p.config == config)
        ]
        return max(points, key=lambda p: p.seq_per_s, default=None)

    def markdown(self) -> str:
        modes = sorted(self.raw_seq_per_s)
        batches = sorted({b for by_batch in self.raw_seq_per_s.values() for b in by_batch})
        lines = [
            "| batch | " + " | ".join(f"raw {m} seq/s" for m in modes) + " |",
            "| ---: |" + " ---: |" * len(modes),
        ]
        lines += [
            f"| {b} | "
            + " | ".join(f"{self.raw_seq_per_s[m].get(b, 0):,.0f}" for m in modes)
            + " |"
            for b in batches
        ]
        lines += [
            "",
            "| config | concurrency | seq/request | seq/s | served/raw | p50 ms | p99 ms "
            "| failures |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in self.served:
            raw = self.raw_for(p.config)
            ratio = p.seq_per_s / raw if raw else 0.0
            lines.append(
                f"| {p.config} | {p.concurrency} | {p.sequences_per_request} | "
                f"{p.seq_per_s:,.0f} | {ratio:.2f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.failures} |"
            )
        best = self.best_served()
        if best is not None and self.raw_for(best.config):
            raw = self.raw_for(best.config)
            lines += [
                "",
                f"Best served: {best.seq_per_s:,.0f} seq/s ({best.config}, concurrency "
                f"{best.concurrency}, {best.sequences_per_request} seq/request); best raw of "
                f"the same network: {raw:,.0f} seq/s; served/raw = {best.seq_per_s / raw:.2f}",
            ]
        return "\n".join(lines)


# --- the raw network ---------------------------------------------------------------------


def measure_raw(
    *,
    weights: Path,
    batch_sizes: Sequence[int],
    repeats: int,
    gpu: bool,
    compile_network: bool,
) -> dict[int, float]:
    """Sequences per second of the network alone, per batch size: the median of ``repeats``
    timed forward passes after warm-up, inputs already on the device. On a GPU the network is
    fp16 (as served) and timed with CUDA events."""
    import torch

    from samples.bert import network as bert_network

    device = torch.device("cuda" if gpu else "cpu")
    model: Any = bert_network.load_network(weights).eval()
    model = (model.half() if gpu else model).to(device)
    if compile_network:
        model = torch.compile(model, dynamic=True)
    batch = bert_payload.make_batches(
        count=1, batch_size=max(batch_sizes), seq_len=contract.SEQUENCE_LENGTH, seed=1
    )[0]
    full = [torch.from_numpy(t).to(device) for _, t in batch.named()]

    def timed(inputs: list[Any]) -> float:
        if not gpu:
            started = time.perf_counter()
            model(*inputs)
            return time.perf_counter() - started
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        model(*inputs)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1000

    results: dict[int, float] = {}
    with torch.inference_mode():
        for batch_size in batch_sizes:
            inputs = [t[:batch_size] for t in full]
            for _ in range(3):
                timed(inputs)
            seconds = statistics.median(timed(inputs) for _ in range(repeats))
            results[batch_size] = batch_size / seconds
            print(f"raw batch {batch_size:4d}: {results[batch_size]:9,.0f} seq/s", flush=True)
    return results


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientJob:
    """What one client process does."""

    url: str
    model: str
    connections: int
    sequences_per_request: int
    start_at: float
    """Wall-clock time when measuring starts (requests before it warm up)."""
    stop_at: float
    """Wall-clock time when the process stops sending."""
    seed: int


def _client_process(job: ClientJob) -> dict[str, Any]:
    return asyncio.run(_client(job))


async def _client(job: ClientJob) -> dict[str, Any]:
    import aiohttp

    requests = [
        bert_payload.encode_binary(batch)
        for batch in bert_payload.make_batches(
            count=16,
            batch_size=job.sequences_per_request,
            seq_len=contract.SEQUENCE_LENGTH,
            seed=job.seed,
        )
    ]
    url = f"{job.url}{contract.infer_path(job.model)}"
    latencies: list[float] = []
    failures: list[str] = []
    sequences = 0

    async def loop(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal sequences
        n = index
        while (now := time.time()) < job.stop_at:
            request = requests[n % len(requests)]
            n += 1
            sent = time.perf_counter()
            try:
                async with session.post(url, data=request.body, headers=request.headers) as resp:
                    body = await resp.read()
                    length = resp.headers.get(bert_payload.INFER_HEADER_LENGTH)
                    bert_payload.check_response(
                        status=resp.status,
                        body=body,
                        header_length=None if length is None else int(length),
                        request=request,
                    )
            # A request past the client's timeout is a failure of that point, not of the run.
            except (aiohttp.ClientError, TimeoutError, bert_payload.UnexpectedResponseError) as exc:
                if now >= job.start_at:
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            done = time.time()
            if now >= job.start_at and done <= job.stop_at:
                latencies.append(time.perf_counter() - sent)
                sequences += request.batch_size

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(loop(i, session) for i in range(job.connections)))
    return {"latencies": latencies, "failures": failures, "sequences": sequences}


def run_point(
    *,
    url: str,
    model: str,
    config: str,
    concurrency: int,
    sequences_per_request: int,
    seconds: float,
    warmup_s: float,
    processes: int,
) -> ServedPoint:
    """Drive the server at one concurrency for ``seconds`` and measure what completes."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + warmup_s + 1.0  # one second for the processes to start
    jobs = [
        ClientJob(
            url=url,
            model=model,
            connections=share,
            sequences_per_request=sequences_per_request,
            start_at=start_at,
            stop_at=start_at + seconds,
            seed=i,
        )
        for i, share in enumerate(shares)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_client_process, jobs)
    latencies = sorted(x for r in results for x in r["latencies"])
    failures = [f for r in results for f in r["failures"]]
    sequences = sum(r["sequences"] for r in results)

    def quantile(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0
        )

    point = ServedPoint(
        config=config,
        concurrency=concurrency,
        sequences_per_request=sequences_per_request,
        requests=len(latencies),
        failures=len(failures),
        seq_per_s=sequences / seconds,
        p50_ms=quantile(0.50),
        p99_ms=quantile(0.99),
        first_failure=failures[0] if failures else "",
    )
    print(
        f"{config}: concurrency {concurrency:4d} x {sequences_per_request} seq: "
        f"{point.seq_per_s:9,.0f} seq/s  p50 {point.p50_ms:6.1f} ms  p99 {point.p99_ms:6.1f} ms"
        f"  failures {point.failures}",
        flush=True,
    )
    return point


# --- orchestration -------------------------------------------------------------------------


def _environment() -> dict[str, str]:
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


def chart_launch(*, helm: Path | None, args_file: Path | None) -> ContainerLaunch:
    """Triton's arguments as the chart runs it: rendered now with ``helm``, or read from a JSON
    list written where helm runs (a GPU machine may have none)."""
    if helm is not None:
        chart = Path(__file__).resolve().parents[2] / "chart"
        objects = render(
            helm=helm,
            chart=chart,
            release="bench",
            namespace="default",
            values={"modelRepository": "gs://bucket/models"},
        )
        return triton_container_launch(objects)
    if args_file is not None:
        written = [str(a) for a in json.loads(args_file.read_text())]
        return ContainerLaunch(args=written, written_args=written, env={})
    raise SystemExit("pass --helm PATH (renders the chart) or --chart-args FILE")


def save(report: Report, out: Path) -> str:
    """Write ``report.md`` and ``report.json`` under ``out``; returns the Markdown."""
    table = report.markdown()
    (out / "report.md").write_text(table + "\n")
    document = {
        "environment": report.environment,
        "raw_seq_per_s": report.raw_seq_per_s,
        "served": [asdict(p) for p in report.served],
    }
    (out / "report.json").write_text(json.dumps(document, indent=2))
    return table


def parse_configs(text: str) -> list[ServerConfig]:
    """``label:instances:max_batch:queue_delay_us[:compile]`` entries, comma separated."""
    configs = []
    for entry in text.split(","):
        parts = entry.split(":")
        if len(parts) not in (4, 5):
            raise SystemExit(
                f"--configs entry {entry!r}: write label:instances:max_batch:delay_us[:compile]"
            )
        configs.append(
            ServerConfig(
                label=parts[0],
                instances=int(parts[1]),
                max_batch_size=int(parts[2]),
                queue_delay_us=int(parts[3]),
                torch_compile=len(parts) == 5 and parts[4] == "compile",
            )
        )
    return configs


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m samples.bert.gpu_benchmark", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench-gpu"))
    parser.add_argument("--size", default="large", help="network size (large, base, tiny)")
    parser.add_argument(
        "--device", choices=("gpu", "cpu"), default="gpu", help="cpu: a smoke run of the harness"
    )
    parser.add_argument(
        "--helm", type=Path, help="render the chart with this helm for Triton's args"
    )
    parser.add_argument(
        "--chart-args",
        type=Path,
        help="JSON list of Triton's args as the chart renders them (where no helm runs)",
    )
    parser.add_argument("--raw-batches", type=_ints, default=_ints("1,8,32,64,128,256"))
    parser.add_argument("--raw-repeats", type=int, default=20)
    parser.add_argument("--concurrency", type=_ints, default=_ints("32,128,256,512"))
    parser.add_argument("--seqs-per-request", type=_ints, default=_ints("1,8"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=8, help="client processes")
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("i2-b256:2:256:500"),
        help="server configurations: label:instances:max_batch:delay_us[:compile],...",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from samples.bert.repository import BuildSettings, render_config, write_repository

    args.out.mkdir(parents=True, exist_ok=True)
    launch = chart_launch(helm=args.helm, args_file=args.chart_args)
    report = Report(environment=_environment())
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
            report.raw_seq_per_s[mode] = measure_raw(
                weights=settings.model_dir / str(settings.version) / "weights",
                batch_sizes=args.raw_batches,
                repeats=args.raw_repeats,
                gpu=args.device == "gpu",
                compile_network=config.torch_compile,
            )
            if args.device == "gpu":
                import torch

                torch.cuda.empty_cache()  # the raw network is gone; give its memory back
        server = LocalTriton(
            model_repository=str(repository),
            workdir=args.out / f"server-{config.label}",
            chart_args=launch.args,
            env=launch.env,
            ready_timeout_s=args.ready_timeout,
        )
        print(f"starting tritonserver for {config}", flush=True)
        with server:
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
                        )
                    )
                    save(report, args.out)  # a run cut short still leaves its figures
    print(save(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
