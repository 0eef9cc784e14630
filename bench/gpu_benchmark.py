"""Serving efficiency on a GPU: BERT through the local Triton server against the raw network.

One run, one machine, one GPU:

1. writes the ``python``-variant repository (``large``, fp16, GPU instances) with the sample's
   own writer, so the benchmark serves exactly what users deploy;
2. times the raw network in-process at each batch size two ways: a burst (CUDA events, median
   of a few passes) and sustained (back to back for as long as a served point lasts, inputs
   copied in and logits copied out each pass, as any server must);
3. starts ``tritonserver`` with the chart's arguments (``demo.local.LocalTriton``) once per
   server configuration and sweeps client concurrency with several client processes, each an
   asyncio loop speaking the v2 binary tensor protocol (``samples/bert/client.py``), every
   response checked; Triton's own statistics give the batch sizes it formed and how busy the
   model was;
4. prints a Markdown table and writes it with the raw figures to ``--out``.

The figure of merit is served sequences per second over the raw network's best sustained
sequences per second: both ran for the same time, at the clocks a sustained load gets (the GPU's
SM clock, power and busy time are recorded next to each figure, ``gpu_telemetry``).
Every phase is bounded in time; only loopback receives traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.gpu_telemetry import GpuSampler, GpuSummary
from demo.errors import LocalTritonError
from demo.local import ContainerLaunch, LocalTriton, triton_container_launch
from deployer.render import render
from samples.bert import client as bert_client
from samples.bert import contract


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


@dataclass(frozen=True)
class ServerCounters:
    """Triton's statistics for the model over one point (differences of its counters)."""

    sequences_per_batch: float
    """Mean sequences per model execution: the batch size dynamic batching formed."""
    model_busy: float
    """Time the model's instances spent executing, over wall time and instances (0-1)."""
    queue_ms: float
    """Mean time a request waited in the scheduler's queue."""


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
    server: ServerCounters | None = None
    """What Triton counted over the measured seconds."""
    gpu: str = ""
    """The GPU over the point (:meth:`GpuSummary.brief`), empty without telemetry."""


@dataclass
class Report:
    """Everything one run measured."""

    raw_seq_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Raw burst sequences per second by mode (``eager``, ``compiled``) and batch size."""
    raw_sustained_seq_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Raw sustained sequences per second by mode and batch size (the figure of merit's base)."""
    raw_gpu: dict[str, str] = field(default_factory=dict)
    """The GPU during each sustained raw phase (``eager 256`` ...)."""
    served: list[ServedPoint] = field(default_factory=list)
    compiled_configs: set[str] = field(default_factory=set)
    """Labels of the configurations that serve the compiled network."""
    failed_configs: dict[str, str] = field(default_factory=dict)
    """Configurations whose server did not start, with the first line of why."""
    environment: dict[str, str] = field(default_factory=dict)

    def best_raw(self, mode: str = "eager", *, sustained: bool = True) -> float:
        """The best raw figure of ``mode``: sustained where measured, else the burst."""
        figures = self.raw_sustained_seq_per_s if sustained else self.raw_seq_per_s
        if sustained and not figures.get(mode):
            figures = self.raw_seq_per_s
        return max(figures.get(mode, {}).values(), default=0.0)

    def raw_for(self, config: str, *, sustained: bool = True) -> float:
        """The raw figure a configuration is compared with: the same network, eager or compiled."""
        mode = "compiled" if config in self.compiled_configs else "eager"
        return self.best_raw(mode, sustained=sustained)

    def best_served(self, config: str | None = None) -> ServedPoint | None:
        points = [
            p for p in self.served if p.failures == 0 and (config is None or p.config == config)
        ]
        return max(points, key=lambda p: p.seq_per_s, default=None)

    def markdown(self) -> str:
        modes = sorted(self.raw_seq_per_s)
        batches = sorted({b for by_batch in self.raw_seq_per_s.values() for b in by_batch})
        lines = [
            "| batch | " + " | ".join(f"{m} burst | {m} sustained" for m in modes) + " |",
            "| ---: |" + " ---: | ---: |" * len(modes),
        ]
        for b in batches:
            cells = []
            for m in modes:
                sustained = self.raw_sustained_seq_per_s.get(m, {}).get(b)
                cells.append(f"{self.raw_seq_per_s[m].get(b, 0):,.0f}")
                cells.append("-" if sustained is None else f"{sustained:,.0f}")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += [f"- raw {phase}: {gpu}" for phase, gpu in self.raw_gpu.items()]
        lines += [
            "",
            "| config | concurrency | seq/request | seq/s | served/raw | p50 ms | p99 ms "
            "| failures | seq/batch | model busy | queue ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in self.served:
            raw = self.raw_for(p.config)
            ratio = p.seq_per_s / raw if raw else 0.0
            counters = (
                f"{p.server.sequences_per_batch:.0f} | {p.server.model_busy:.2f} | "
                f"{p.server.queue_ms:.1f}"
                if p.server
                else "- | - | -"
            )
            lines.append(
                f"| {p.config} | {p.concurrency} | {p.sequences_per_request} | "
                f"{p.seq_per_s:,.0f} | {ratio:.2f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.failures} | {counters} |"
            )
        lines += [
            f"- {p.config} {p.concurrency} x {p.sequences_per_request}: {p.gpu}"
            for p in self.served
            if p.gpu
        ]
        lines += [f"- {label} did not start: {why}" for label, why in self.failed_configs.items()]
        best = self.best_served()
        if best is not None and self.raw_for(best.config):
            raw = self.raw_for(best.config)
            burst = self.raw_for(best.config, sustained=False)
            lines += [
                "",
                f"Best served: {best.seq_per_s:,.0f} seq/s ({best.config}, concurrency "
                f"{best.concurrency}, {best.sequences_per_request} seq/request); raw network of "
                f"the same kind: {raw:,.0f} seq/s sustained, {burst:,.0f} burst; "
                f"served/raw = {best.seq_per_s / raw:.2f} (against the burst: "
                f"{best.seq_per_s / burst:.2f})",
            ]
        return "\n".join(lines)


# --- the raw network ---------------------------------------------------------------------


@dataclass
class RawFigures:
    """The raw network's sequences per second by batch size."""

    burst: dict[int, float] = field(default_factory=dict)
    sustained: dict[int, float] = field(default_factory=dict)
    gpu: dict[int, GpuSummary] = field(default_factory=dict)
    """The GPU during each sustained phase."""


def measure_raw(
    *,
    weights: Path,
    batch_sizes: Sequence[int],
    repeats: int,
    sustained_batches: Sequence[int],
    sustained_s: float,
    gpu: bool,
    compile_network: bool,
    sampler: GpuSampler,
) -> RawFigures:
    """Sequences per second of the network alone, per batch size, on the device the sample
    serves from (fp16 on a GPU, as served).

    Burst: the median of ``repeats`` timed passes after warm-up, inputs already on the device,
    timed with CUDA events on a GPU. Sustained (at ``sustained_batches``): passes back to back
    for ``sustained_s`` seconds of wall time, each copying its inputs from host memory and its
    FP32 logits back, as the served model does; this is what one process could serve with no
    server around it, at the clocks a sustained load gets.
    """
    import torch

    from samples.bert import network as bert_network

    device = torch.device("cuda" if gpu else "cpu")
    model: Any = bert_network.load_network(weights).eval()
    model = (model.half() if gpu else model).to(device)
    if compile_network:
        model = torch.compile(model, dynamic=True)
    batch = bert_client.make_batches(
        count=1,
        batch_size=max([*batch_sizes, *sustained_batches]),
        seq_len=contract.SEQUENCE_LENGTH,
        seed=1,
    )[0]
    host = [torch.from_numpy(t) for _, t in batch.named()]
    full = [t.to(device) for t in host]

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

    figures = RawFigures()
    with torch.inference_mode():
        for batch_size in batch_sizes:
            inputs = [t[:batch_size] for t in full]
            for _ in range(3):
                timed(inputs)
            seconds = statistics.median(timed(inputs) for _ in range(repeats))
            figures.burst[batch_size] = batch_size / seconds
            print(f"raw batch {batch_size:4d}: {figures.burst[batch_size]:9,.0f} seq/s", flush=True)
        for batch_size in sustained_batches:
            inputs = [t[:batch_size] for t in host]
            model(*[t.to(device) for t in inputs]).float().cpu()  # warm this size
            passes = 0
            with sampler.phase() as phase:
                started = time.perf_counter()
                while (elapsed := time.perf_counter() - started) < sustained_s:
                    on_device = [t.to(device, non_blocking=True) for t in inputs]
                    model(*on_device).float().cpu()
                    passes += 1
            figures.sustained[batch_size] = passes * batch_size / elapsed
            if phase.summary is not None:
                figures.gpu[batch_size] = phase.summary
            gpu_state = f"  ({phase.summary.brief()})" if phase.summary else ""
            print(
                f"raw batch {batch_size:4d} sustained {elapsed:.0f} s: "
                f"{figures.sustained[batch_size]:9,.0f} seq/s{gpu_state}",
                flush=True,
            )
    return figures


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
        bert_client.encode_binary(batch)
        for batch in bert_client.make_batches(
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
                    length = resp.headers.get(bert_client.INFER_HEADER_LENGTH)
                    bert_client.check_response(
                        status=resp.status,
                        body=body,
                        header_length=None if length is None else int(length),
                        request=request,
                    )
            # A request past the client's timeout is a failure of that point, not of the run.
            except (aiohttp.ClientError, TimeoutError, bert_client.UnexpectedResponseError) as exc:
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


@dataclass(frozen=True)
class ModelStatistics:
    """Reads Triton's statistics of one model; the chart restricts that API to its key."""

    url: str
    model: str
    headers: dict[str, str]

    def read(self) -> dict[str, Any] | None:
        """The model's ``model_stats`` entry, or ``None`` (with a note) if Triton refuses."""
        request = urllib.request.Request(
            f"{self.url}/v2/models/{self.model}/stats", headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                stats: dict[str, Any] = json.loads(response.read())["model_stats"][0]
                return stats
        except (OSError, KeyError, IndexError, ValueError) as exc:
            print(f"note: no server statistics ({exc})", flush=True)
            return None


def admin_headers(args: Sequence[str], api: str = "statistics") -> dict[str, str]:
    """The header that opens ``api`` where Triton's args restrict it
    (``--http-restricted-api=a,b:header=value``); none where they do not."""
    for arg in args:
        name, _, value = arg.partition("=")
        if name != "--http-restricted-api":
            continue
        apis, _, header = value.rpartition(":")
        key, _, secret = header.partition("=")
        if api in apis.split(","):
            return {key: secret}
    return {}


def counters_between(
    before: dict[str, Any], after: dict[str, Any], *, wall_s: float, instances: int
) -> ServerCounters:
    """What Triton did between two readings of its statistics."""

    def busy_ns(stats: dict[str, Any]) -> int:
        return sum(
            batch[part]["ns"]
            for batch in stats.get("batch_stats", [])
            for part in ("compute_input", "compute_infer", "compute_output")
        )

    def delta(path: tuple[str, ...]) -> int:
        a: Any = after
        b: Any = before
        for key in path:
            a, b = a[key], b[key]
        return int(a) - int(b)

    executions = delta(("execution_count",))
    queued = delta(("inference_stats", "queue", "count"))
    return ServerCounters(
        sequences_per_batch=delta(("inference_count",)) / executions if executions else 0.0,
        model_busy=(busy_ns(after) - busy_ns(before)) / 1e9 / wall_s / max(1, instances),
        queue_ms=delta(("inference_stats", "queue", "ns")) / 1e6 / queued if queued else 0.0,
    )


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
    statistics_reader: ModelStatistics | None = None,
    instances: int = 1,
    sampler: GpuSampler | None = None,
) -> ServedPoint:
    """Drive the server at one concurrency for ``seconds`` and measure what completes; with a
    statistics reader, Triton's counters over the same seconds; with a sampler, the GPU's
    state over them."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    start_at = time.time() + warmup_s + 1.0  # one second for the processes to start
    stop_at = start_at + seconds
    jobs = [
        ClientJob(
            url=url,
            model=model,
            connections=share,
            sequences_per_request=sequences_per_request,
            start_at=start_at,
            stop_at=stop_at,
            seed=i,
        )
        for i, share in enumerate(shares)
    ]
    # Triton's counters are read when measuring starts and stops, from a thread, so warm-up
    # and any request still waiting after the window stay out of them, as they stay out of
    # the client's figures; the GPU readings are cut to the same window.
    readings: dict[str, dict[str, Any] | None] = {}

    def read_counters_at_window_edges() -> None:
        for edge, at in (("before", start_at), ("after", stop_at)):
            time.sleep(max(0.0, at - time.time()))
            readings[edge] = statistics_reader.read() if statistics_reader else None

    counter_thread = threading.Thread(target=read_counters_at_window_edges, daemon=True)
    counter_thread.start()
    sampling = sampler.phase(window=(start_at, stop_at)) if sampler else contextlib.nullcontext()
    with multiprocessing.get_context("spawn").Pool(processes) as pool, sampling as phase:
        results = pool.map(_client_process, jobs)
    gpu = phase.summary if phase else None
    counter_thread.join()
    before, after = readings.get("before"), readings.get("after")
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
        server=(
            counters_between(before, after, wall_s=seconds, instances=instances)
            if before and after
            else None
        ),
        gpu=gpu.brief() if gpu else "",
    )
    print(
        f"{config}: concurrency {concurrency:4d} x {sequences_per_request} seq: "
        f"{point.seq_per_s:9,.0f} seq/s  p50 {point.p50_ms:6.1f} ms  p99 {point.p99_ms:6.1f} ms"
        f"  failures {point.failures}",
        flush=True,
    )
    if point.server:
        print(
            f"  triton: {point.server.sequences_per_batch:.0f} seq/batch, model busy "
            f"{point.server.model_busy:.2f}, queue {point.server.queue_ms:.1f} ms",
            flush=True,
        )
    if point.gpu:
        print(f"  gpu: {point.gpu}", flush=True)
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
        chart = Path(__file__).resolve().parents[1] / "chart"
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
        "raw_sustained_seq_per_s": report.raw_sustained_seq_per_s,
        "raw_gpu": report.raw_gpu,
        "served": [asdict(p) for p in report.served],
        "failed_configs": report.failed_configs,
    }
    (out / "report.json").write_text(json.dumps(document, indent=2))
    return table


CONFIG_FLAGS = ("compile", "mps")

# Where the MPS control program is looked for: PATH, then where GKE and the NVIDIA container
# toolkit mount the driver's utilities.
MPS_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/nvidia/bin"])


def parse_configs(text: str) -> list[ServerConfig]:
    """``label:instances:max_batch:queue_delay_us[:compile][:mps]`` entries, comma separated."""
    configs = []
    for entry in text.split(","):
        parts = entry.split(":")
        flags = parts[4:]
        if len(parts) < 4 or any(f not in CONFIG_FLAGS for f in flags):
            raise SystemExit(
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


def mps_control() -> str:
    """The path of ``nvidia-cuda-mps-control``; a clear stop where it is missing."""
    control = shutil.which("nvidia-cuda-mps-control", path=MPS_SEARCH_PATH)
    if control is None:
        raise SystemExit(
            "a configuration asks for MPS (:mps) but nvidia-cuda-mps-control is not on PATH or "
            "in /usr/local/nvidia/bin: install the driver's utilities or drop :mps"
        )
    return control


@contextlib.contextmanager
def mps_daemon(workdir: Path) -> Iterator[dict[str, str]]:
    """An MPS control daemon of its own (pipe and log folders under ``workdir``), quit on
    exit; yields the environment that makes a process its client."""
    control = mps_control()
    env = {
        "CUDA_MPS_PIPE_DIRECTORY": str(workdir / "mps-pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(workdir / "mps-log"),
    }
    for folder in env.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    daemon_env = {**os.environ, **env}
    subprocess.run([control, "-d"], env=daemon_env, check=True, timeout=30)
    try:
        yield env
    finally:
        subprocess.run([control], input=b"quit\n", env=daemon_env, check=False, timeout=60)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_benchmark", description=__doc__)
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
    parser.add_argument(
        "--sustained-batches",
        type=_ints,
        help="batch sizes timed sustained (default: each configuration's max batch size)",
    )
    parser.add_argument(
        "--sustained-seconds", type=float, help="length of each sustained raw phase (--seconds)"
    )
    parser.add_argument("--concurrency", type=_ints, default=_ints("32,128,256,512"))
    parser.add_argument("--seqs-per-request", type=_ints, default=_ints("1,8"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=8, help="client processes")
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("i4-mps:4:256:500:mps,i4:4:256:500"),
        help="server configurations: label:instances:max_batch:delay_us[:compile][:mps],... "
        "(default: four instances behind MPS, then without)",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    return parser


def serve_and_sweep(
    config: ServerConfig,
    *,
    repository: Path,
    args: argparse.Namespace,
    launch: ContainerLaunch,
    report: Report,
    sampler: GpuSampler,
) -> None:
    """Start Triton for ``config`` (behind its own MPS daemon where asked) and run every
    concurrency and request size against it, saving the report after each point."""
    workdir = args.out / f"server-{config.label}"
    with contextlib.ExitStack() as stack:
        mps_env = stack.enter_context(mps_daemon(workdir)) if config.mps else {}
        server = LocalTriton(
            model_repository=str(repository),
            workdir=workdir,
            chart_args=launch.args,
            env={**launch.env, **mps_env},
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from samples.bert.repository import BuildSettings, render_config, write_repository

    if any(config.mps for config in args.configs):
        mps_control()  # before anything runs, not after the first configurations
    args.out.mkdir(parents=True, exist_ok=True)
    launch = chart_launch(helm=args.helm, args_file=args.chart_args)
    report = Report(environment=_environment())
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
                launch=launch,
                report=report,
                sampler=sampler,
            )
        except (LocalTritonError, subprocess.SubprocessError) as exc:
            # One configuration that cannot start must not cost the others their figures.
            report.failed_configs[config.label] = str(exc).splitlines()[0][:300]
            print(f"{config.label} failed: {exc}", flush=True)
            save(report, args.out)
    print(save(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
