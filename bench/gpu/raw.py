"""The raw network's speed, timed in-process: what one process could serve with no server."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.gpu.telemetry import GpuSampler, GpuSummary
from samples.bert import client as bert_client
from samples.bert import contract

if TYPE_CHECKING:  # torch is imported only when a phase runs
    from samples.bert.cuda_graphs import BatchRunner, CaptureReport


@dataclass
class RawFigures:
    """The raw network's sequences per second by batch size."""

    burst: dict[int, float] = field(default_factory=dict)
    sustained: dict[int, float] = field(default_factory=dict)
    gpu: dict[int, GpuSummary] = field(default_factory=dict)
    """The GPU during each sustained phase."""


@dataclass
class BatchLatency:
    """Milliseconds a batch takes host to host through the served model's batch runner."""

    eager_ms: dict[int, float] = field(default_factory=dict)
    graphed_ms: dict[int, float] = field(default_factory=dict)
    capture: CaptureReport | None = None
    """What capturing the graphs cost (None without graphs)."""


def load_served_network(weights: Path, *, gpu: bool, compile_network: bool) -> Any:
    """The network as the python variant serves it: fp16 on a GPU, compiled where asked."""
    import torch

    from samples.bert import network as bert_network

    device = torch.device("cuda" if gpu else "cpu")
    model: Any = bert_network.load_network(weights).eval()
    model = (model.half() if gpu else model).to(device)
    if compile_network:
        model = torch.compile(model, dynamic=True)
    return model


def measure_batch_latency(
    model: Any, *, gpu: bool, batch_sizes: Sequence[int], repeats: int, buckets: Sequence[int]
) -> BatchLatency:
    """Per batch size, the median time of ``repeats`` batches through the served model's own
    ``BatchRunner`` (inputs from host memory, FP32 logits back to it, as the model serves a
    batch), eager and, with ``buckets``, replayed from CUDA graphs captured for them (batches
    above the largest bucket run eagerly there too). Triton, HTTP and the client add to this."""
    import torch

    device = torch.device("cuda" if gpu else "cpu")
    runners = {"eager": _runner(model, device, ())}
    latency = BatchLatency()
    if buckets:
        runners["graphed"] = _runner(model, device, buckets)
        latency.capture = runners["graphed"].report
    (batch,) = bert_client.make_batches(
        count=1, batch_size=max(batch_sizes), seq_len=contract.SEQUENCE_LENGTH, seed=2
    )
    host = [torch.from_numpy(t) for _, t in batch.named()]
    for mode, runner in runners.items():
        figures = latency.graphed_ms if mode == "graphed" else latency.eager_ms
        for batch_size in batch_sizes:
            columns = [[t[:batch_size]] for t in host]
            for _ in range(3):
                runner(columns)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                runner(columns)  # returns once the logits are in host memory
                times.append(time.perf_counter() - started)
            figures[batch_size] = statistics.median(times) * 1000
            print(f"raw {mode} batch {batch_size:4d}: {figures[batch_size]:7.2f} ms", flush=True)
    return latency


def _runner(model: Any, device: Any, buckets: Sequence[int]) -> BatchRunner:
    from samples.bert.cuda_graphs import BatchRunner

    return BatchRunner(
        model,
        device=device,
        inputs=len(contract.INPUTS),
        sequence_length=contract.SEQUENCE_LENGTH,
        buckets=buckets,
        log=lambda line: print(line, flush=True),
        warn=lambda line: print(f"warning: {line}", flush=True),
    )


def measure_raw(
    model: Any,
    *,
    batch_sizes: Sequence[int],
    repeats: int,
    sustained_batches: Sequence[int],
    sustained_s: float,
    gpu: bool,
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

    device = torch.device("cuda" if gpu else "cpu")
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
