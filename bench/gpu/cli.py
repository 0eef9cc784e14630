"""``python -m bench.gpu``: the command line; parsing and exit codes only (0 done, 2 a run
that cannot be made as asked)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import gpu
from bench.errors import BenchError
from bench.gpu import chart_args, perf_analyzer, sweep


def _configs(text: str) -> list[sweep.ServerConfig]:
    try:
        return sweep.parse_configs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _points(text: str) -> list[tuple[int, int]]:
    try:
        return sweep.parse_points(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=gpu.__doc__)
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
        help="Triton's container as the chart renders it, where no helm runs: a JSON list of "
        "its args, or an object with its command and args (rendered with gpu.mps.enabled for "
        ":mps configurations)",
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
    parser.add_argument(
        "--latency-batches",
        type=_ints,
        default=_ints("1,8,32,64,128"),
        help="batch sizes timed host to host through the model's batch runner, eager and "
        "from CUDA graphs (the per-batch latency references)",
    )
    parser.add_argument(
        "--points",
        type=_points,
        help="clients x sequences per request, such as 1x1,32x1,128x8 (default: "
        + ",".join(f"{c}x{n}" for c, n in sweep.DEFAULT_POINTS)
        + ")",
    )
    parser.add_argument(
        "--concurrency", type=_ints, help="with --seqs-per-request: a grid instead of --points"
    )
    parser.add_argument("--seqs-per-request", type=_ints, help="see --concurrency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=8, help="client processes")
    parser.add_argument(
        "--configs",
        type=_configs,
        default=_configs("eager:1:64:0,graphs:1:64:0:graphs:perf"),
        help="server configurations: label:instances:max_batch:delay_us[:flag]..., comma "
        "separated; flags :compile, :graphs[=N], :perf, :mps (default: the sample's GPU "
        "build eager, then with CUDA graphs, measured by perf_analyzer too)",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument(
        "--perf-analyzer", type=Path, help="the perf_analyzer program (default: on PATH)"
    )
    parser.add_argument(
        "--perf-timeout",
        type=float,
        default=perf_analyzer.POINT_TIMEOUT_S,
        help="seconds perf_analyzer may take for one point",
    )
    parser.add_argument(
        "--save-chart-args",
        type=Path,
        metavar="FILE",
        help="with --helm: write what --chart-args reads on a machine without helm (Triton's "
        "container plain and behind MPS, perf_analyzer's Job arguments), then exit",
    )
    parser.add_argument(
        "--mps-control-path",
        default="/usr/local/nvidia/bin/nvidia-cuda-mps-control",
        help="with --save-chart-args: the MPS control program's path the launcher is rendered "
        "with (a run replaces it with the one it finds)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.save_chart_args is not None:
            if args.helm is None:
                raise BenchError("--save-chart-args renders the chart: pass --helm PATH too")
            chart_args.save_chart_args(
                helm=args.helm, out=args.save_chart_args, mps_control_path=args.mps_control_path
            )
            print(f"wrote {args.save_chart_args}")
            return 0
        sweep.run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
