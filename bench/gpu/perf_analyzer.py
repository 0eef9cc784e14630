"""perf_analyzer, Triton's own C++ load generator, against the served model at the points the
project's client measured: a third party's figures next to ours.

It runs with the arguments of the chart's perf_analyzer test Job (``perfAnalyzer.*`` in the
chart's values; ``templates/tests/perf-analyzer.yaml``), changed only where they name the
cluster: the server's address, the inputs file (the chart's own, mounted from a ConfigMap
there), the restricted-API key (from the Triton arguments the benchmark runs with), and the
point's concurrency and sequences per request in place of the Job's sweep. Its CSV gives
throughput, latency percentiles and the server's queue and compute times per request.

The binary comes from the ``perf-analyzer`` wheel (manylinux_2_38: it needs glibc 2.38); where
it is missing or cannot run, the report says why instead of a figure.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRAM = "perf_analyzer"
CHART_INPUTS = Path(__file__).resolve().parents[2] / "chart" / "files" / "perf-analyzer-inputs.json"
"""The inputs the chart's Job mounts."""
JOB_SUFFIX = "-perf-analyzer"
POINT_TIMEOUT_S = 150.0
"""Longest a point may run by default: perf_analyzer measures windows until three agree, ten
at most."""


@dataclass(frozen=True)
class PerfPoint:
    """perf_analyzer's figures at one point (times in milliseconds)."""

    config: str
    concurrency: int
    sequences_per_request: int
    seq_per_s: float = 0.0
    """perf_analyzer's inferences a second: sequences, as it counts each batch row."""
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    queue_ms: float = 0.0
    """Triton's queue time per request, as perf_analyzer read it from the server."""
    compute_ms: float = 0.0
    """Triton's compute time per request (inputs, inference, outputs)."""
    error: str = ""
    """Why there is no figure (empty when there is)."""


def find_program(explicit: Path | None) -> tuple[str | None, str]:
    """The program to run and, where there is none, why."""
    if explicit is not None:
        return (str(explicit), "") if explicit.is_file() else (None, f"{explicit} is not a file")
    found = shutil.which(PROGRAM)
    if found is None:
        return None, f"{PROGRAM} is not on PATH (pip install perf-analyzer, or --perf-analyzer)"
    return found, ""


def job_args(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The arguments of the chart's perf_analyzer test Job, from the rendered objects (the chart
    rendered with ``perfAnalyzer.enabled=true``)."""
    for obj in objects:
        name = str(obj.get("metadata", {}).get("name", ""))
        if obj.get("kind") == "Job" and name.endswith(JOB_SUFFIX):
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            return [str(arg) for arg in container["args"]]
    raise ValueError(f"the rendered chart has no Job named *{JOB_SUFFIX}")


def _flag(arg: str) -> str:
    return arg.split("=", 1)[0]


def local_args(
    chart_args: Sequence[str],
    *,
    address: str,
    headers: Mapping[str, str],
    concurrency: int,
    sequences_per_request: int,
    inputs: Path = CHART_INPUTS,
    csv_file: Path,
) -> list[str]:
    """The Job's arguments for one point on this machine: ``-u`` is ``address`` (host:port),
    ``-b`` the sequences per request, ``--concurrency-range`` the one concurrency, the inputs
    this checkout's file, ``-H`` the restricted-API header with its key; ``-f`` writes the
    CSV. Every other argument stays as the chart wrote it."""
    replaced_values = {"-u": address, "-b": str(sequences_per_request)}
    header = ",".join(f"{key}:{value}" for key, value in headers.items())
    out: list[str] = []
    args = iter(chart_args)
    for arg in args:
        if arg in replaced_values:
            next(args)
            out += [arg, replaced_values[arg]]
        elif arg == "-H":
            next(args)
            if header:
                out += [arg, header]
        elif _flag(arg) == "--concurrency-range":
            out.append(f"--concurrency-range={concurrency}:{concurrency}")
        elif _flag(arg) == "--input-data":
            out.append(f"--input-data={inputs}")
        else:
            out.append(arg)
    return [*out, "-f", str(csv_file)]


def _number(row: Mapping[str, str], column: str) -> float:
    value = row.get(column, "")
    return float(value) if value else 0.0


def parse_csv(text: str) -> dict[str, float]:
    """The first row of perf_analyzer's ``-f`` CSV (times in microseconds there), as
    ``seq_per_s`` and milliseconds."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ValueError("perf_analyzer wrote no measurement to its CSV")
    row = rows[0]
    compute = sum(_number(row, f"Server Compute {part}") for part in ("Input", "Infer", "Output"))
    return {
        "seq_per_s": _number(row, "Inferences/Second"),
        "p50_ms": _number(row, "p50 latency") / 1000,
        "p99_ms": _number(row, "p99 latency") / 1000,
        "queue_ms": _number(row, "Server Queue") / 1000,
        "compute_ms": compute / 1000,
    }


def run_point(
    program: str,
    *,
    config: str,
    chart_args: Sequence[str],
    address: str,
    headers: Mapping[str, str],
    concurrency: int,
    sequences_per_request: int,
    workdir: Path,
    timeout_s: float = POINT_TIMEOUT_S,
) -> PerfPoint:
    """perf_analyzer at one point; its figures, or why there are none (stopped after
    ``timeout_s``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv_file = workdir / f"perf-{config}-{concurrency}x{sequences_per_request}.csv"
    csv_file.unlink(missing_ok=True)
    command = [
        program,
        *local_args(
            chart_args,
            address=address,
            headers=headers,
            concurrency=concurrency,
            sequences_per_request=sequences_per_request,
            csv_file=csv_file,
        ),
    ]
    point = PerfPoint(config, concurrency, sequences_per_request)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _failed(point, f"{type(exc).__name__}: {exc}")
    if result.returncode != 0 or not csv_file.is_file():
        lines = (result.stderr or result.stdout).strip().splitlines()
        return _failed(point, f"exit {result.returncode}: {lines[-1] if lines else 'no output'}")
    try:
        figures = parse_csv(csv_file.read_text())
    except (ValueError, KeyError) as exc:
        return _failed(point, str(exc))
    return PerfPoint(
        config,
        concurrency,
        sequences_per_request,
        seq_per_s=figures["seq_per_s"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        queue_ms=figures["queue_ms"],
        compute_ms=figures["compute_ms"],
    )


def _failed(point: PerfPoint, why: str) -> PerfPoint:
    return PerfPoint(point.config, point.concurrency, point.sequences_per_request, error=why[:300])
