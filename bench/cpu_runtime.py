"""Which CPU runtime serves the python variant faster: side by side, in one run, on this machine.

For each configuration (runtime, intra-op threads, instances) it writes the tiny python-variant
repository, serves it with the local Triton (``demo.local.LocalTriton``, loopback only),
drives it for a fixed time with a fixed number of requests in flight (one sequence a request,
binary tensors, every response's name and shape checked) and prints a Markdown table with each
configuration's throughput as a ratio to the first. Every phase is bounded in time.

    python -m bench.cpu_runtime --seconds 12 --concurrency 16
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tritonclient.http as http

from common.stats import percentile
from demo.local import LocalTriton
from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.client import (
    UnexpectedResponseError,
    check_logits,
    infer_inputs,
    make_batches,
)
from samples.bert.repository import write_repository


@dataclass(frozen=True)
class RuntimeConfig:
    """One served configuration of the tiny python variant."""

    runtime: str
    """``onnxruntime`` or ``torch``."""
    threads: int
    """Intra-op threads per instance (0: the library's default, all cores)."""
    instances: int = 1
    """CPU model instances."""

    @property
    def label(self) -> str:
        """A row title for the table."""
        threads = "default threads" if self.threads == 0 else f"{self.threads} thread(s)"
        return f"{self.runtime}, {threads}, {self.instances} instance(s)"


CONFIGS = (
    RuntimeConfig("onnxruntime", 0),
    RuntimeConfig("onnxruntime", 1),
    RuntimeConfig("torch", 0),
    RuntimeConfig("torch", 1),
    RuntimeConfig("onnxruntime", 1, instances=2),
)


@dataclass(frozen=True)
class Result:
    """What one configuration served."""

    config: RuntimeConfig
    """The configuration."""
    requests_per_s: float
    """Answered requests (one sequence each) per second."""
    p50_ms: float
    """Median latency."""
    p99_ms: float
    """99th percentile latency."""


def drive(url: str, *, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """Keep ``concurrency`` requests in flight for ``seconds``; returns requests per second
    and the sorted latencies. A wrong answer raises."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    (batch,) = make_batches(count=1, batch_size=1, seq_len=contract.SEQUENCE_LENGTH)

    def worker(stop_at: float) -> None:
        # One client per thread: tritonclient's HTTP client is not thread-safe.
        client = http.InferenceServerClient(url, network_timeout=30)
        request = infer_inputs(http, batch.named())
        try:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                result = client.infer(contract.DEFAULT_MODEL_NAME, request)
                elapsed = time.perf_counter() - started
                logits = result.as_numpy(contract.OUTPUT_LOGITS)
                if logits is None:
                    raise UnexpectedResponseError(f"no {contract.OUTPUT_LOGITS} in the answer")
                check_logits(logits, batch_size=batch.batch_size, seq_len=batch.seq_len)
                with lock:
                    latencies.append(elapsed)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    started = time.monotonic()
    threads = [
        threading.Thread(target=worker, args=(started + seconds,)) for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    if errors:
        raise errors[0]
    return len(latencies) / (time.monotonic() - started), sorted(latencies)


def measure(config: RuntimeConfig, *, workdir: Path, seconds: float, concurrency: int) -> Result:
    """Serve ``config`` and drive it; returns its figures."""
    repository = workdir / f"{config.runtime}-{config.threads}-{config.instances}" / "models"
    write_repository(
        BuildSettings(
            variant="python",
            repository=repository,
            size="tiny",
            cpu_runtime=config.runtime,
            cpu_threads=config.threads,
            instance_count=config.instances,
        ),
        progress=lambda _: None,
    )
    with LocalTriton(
        model_repository=str(repository), workdir=repository.parent / "triton"
    ) as server:
        url = server.http_url.removeprefix("http://")
        drive(url, seconds=min(2.0, seconds), concurrency=concurrency)  # warm-up
        rate, latencies = drive(url, seconds=seconds, concurrency=concurrency)
    return Result(
        config=config,
        requests_per_s=rate,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
    )


def table(results: Sequence[Result]) -> str:
    """Markdown table, throughput as a ratio to the first row."""
    lines = [
        "| configuration | requests/s | vs first | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    base = results[0].requests_per_s
    for result in results:
        lines.append(
            f"| {result.config.label} | {result.requests_per_s:.0f} | "
            f"{result.requests_per_s / base:.2f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every configuration and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_runtime")
    parser.add_argument("--seconds", type=float, default=12.0, help="per configuration (<= 120)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, 120.0)
    results = []
    with tempfile.TemporaryDirectory(prefix="bert-cpu-bench-") as workdir:
        for config in CONFIGS:
            print(f"measuring {config.label} for {seconds:.0f} s", flush=True)
            results.append(
                measure(
                    config, workdir=Path(workdir), seconds=seconds, concurrency=args.concurrency
                )
            )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
