"""``python -m bench.gpu``: the command line; parsing and exit codes only (0 done, 2 a run
that cannot be made as asked)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import gpu
from bench.errors import BenchError
from bench.gpu import sweep


def _configs(text: str) -> list[sweep.ServerConfig]:
    try:
        return sweep.parse_configs(text)
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
    parser.add_argument("--concurrency", type=_ints, default=_ints("32,128,256,512"))
    parser.add_argument("--seqs-per-request", type=_ints, default=_ints("1,8"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=8, help="client processes")
    parser.add_argument(
        "--configs",
        type=_configs,
        default=_configs("i4-mps:4:256:500:mps,i4:4:256:500"),
        help="server configurations: label:instances:max_batch:delay_us[:compile][:mps],... "
        "(default: four instances behind MPS, then without)",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sweep.run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
