"""One measured point: the server driven at one concurrency and request size."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from typing import Any

from bench.gpu.client import ClientJob, run_client
from bench.gpu.report import ServedPoint
from bench.gpu.telemetry import GpuSampler
from bench.gpu.triton_stats import ModelStatistics, counters_between
from common.stats import percentile


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
        results = pool.map(run_client, jobs)
    gpu = phase.summary if phase else None
    counter_thread.join()
    before, after = readings.get("before"), readings.get("after")
    latencies = [x for r in results for x in r["latencies"]]
    failures = [f for r in results for f in r["failures"]]
    sequences = sum(r["sequences"] for r in results)

    point = ServedPoint(
        config=config,
        concurrency=concurrency,
        sequences_per_request=sequences_per_request,
        requests=len(latencies),
        failures=len(failures),
        seq_per_s=sequences / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
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
