"""Command line: ``python -m samples.bert build ...`` and ``python -m samples.bert upload ...``.

Exit codes: 0 done; 2 bad input, credentials or bucket (a message says what to fix);
1 an unexpected failure (a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from samples.bert import contract, network, tensorrt
from samples.bert.errors import SampleError
from samples.bert.repository import (
    CPU_RUNTIMES,
    DEFAULT_CPU_RUNTIME,
    DEVICES,
    VARIANTS,
    BuildSettings,
    write_repository,
)
from samples.bert.upload import DEFAULT_EXCLUDES, upload_repository


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m samples.bert", description="BERT question answering for Triton."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="write a Triton model repository")
    build.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    build.add_argument("--output", required=True, type=Path, help="model repository folder")
    build.add_argument(
        "--size",
        help=f"random weights of this size: {', '.join(network.SIZES)} "
        f"(default {network.DEFAULT_SIZE} unless --checkpoint is given)",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
    build.add_argument("--checkpoint", type=Path, help="local save_pretrained folder to load")
    build.add_argument("--model-name", default=contract.DEFAULT_MODEL_NAME)
    build.add_argument("--version", type=int, default=contract.DEFAULT_MODEL_VERSION)
    build.add_argument("--sequence-length", type=int, default=contract.SEQUENCE_LENGTH)
    build.add_argument("--device", help=f"{' or '.join(DEVICES)} (default: cpu for python)")
    build.add_argument("--max-batch-size", type=int, help="default 32 on a CPU, 64 on a GPU")
    build.add_argument("--instance-count", type=int, default=1)
    build.add_argument("--max-queue-delay-us", type=int, default=0)
    build.add_argument(
        "--cpu-runtime",
        default=DEFAULT_CPU_RUNTIME,
        help=f"python variant on a CPU: {' or '.join(CPU_RUNTIMES)}",
    )
    build.add_argument(
        "--cpu-threads", type=int, default=1, help="python on a CPU: threads per instance"
    )
    build.add_argument("--fp32", action="store_true", help="GPU: full precision instead of fp16")
    build.add_argument("--torch-compile", action="store_true", help="python on a GPU")
    build.add_argument(
        "--gpu",
        default=tensorrt.DEFAULT_GPU,
        help=f"tensorrt: the GPU to build for ({', '.join(tensorrt.GPUS)})",
    )
    build.add_argument("--int8", action="store_true", help="tensorrt: allow INT8 kernels")
    build.add_argument("--int8-calibration-cache", help="tensorrt: path in the container")
    build.add_argument(
        "--ngc-release",
        default=tensorrt.NGC_RELEASE,
        help="tensorrt: the NGC release (YY.MM) of the Triton image that serves the engine, "
        f"the chart's image.tag without -py3 (default {tensorrt.NGC_RELEASE})",
    )
    build.add_argument("--replace", action="store_true", help="replace an existing model")

    upload = commands.add_parser("upload", help="copy a model repository to Cloud Storage")
    upload.add_argument("repository", type=Path)
    upload.add_argument("destination", help="gs://BUCKET[/PREFIX]")
    upload.add_argument("--delete", action="store_true", help="remove remote leftovers")
    upload.add_argument(
        "--exclude",
        action="append",
        help=f"glob of relative paths to skip (default {' '.join(DEFAULT_EXCLUDES)})",
    )
    return parser


def _build(args: argparse.Namespace) -> None:
    settings = BuildSettings(
        variant=args.variant,
        repository=args.output,
        size=args.size,
        seed=args.seed,
        checkpoint=args.checkpoint,
        model_name=args.model_name,
        version=args.version,
        sequence_length=args.sequence_length,
        device=args.device,
        max_batch_size=args.max_batch_size,
        instance_count=args.instance_count,
        max_queue_delay_us=args.max_queue_delay_us,
        cpu_runtime=args.cpu_runtime,
        cpu_threads=args.cpu_threads,
        fp16=not args.fp32,
        torch_compile=args.torch_compile,
        gpu=args.gpu,
        int8=args.int8,
        int8_calibration_cache=args.int8_calibration_cache,
        ngc_release=args.ngc_release,
        replace=args.replace,
    )
    write_repository(settings, progress=lambda line: print(line, flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            _build(args)
        else:
            upload_repository(
                args.repository,
                args.destination,
                excludes=tuple(args.exclude) if args.exclude else DEFAULT_EXCLUDES,
                delete=args.delete,
                progress=lambda line: print(line, flush=True),
            )
            print(f"next: helm install triton chart --set modelRepository={args.destination}")
    except SampleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
