"""Command line: ``python -m samples.bert build ...`` and ``python -m samples.bert upload ...``.

Exit codes: 0 done; 2 bad input, credentials or bucket (a message says what to fix);
1 an unexpected failure (a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from samples.bert import checkpoint, contract, cuda_graphs, network, tensorrt
from samples.bert.build_settings import (
    CPU_RUNTIMES,
    DEFAULT_CPU_RUNTIME,
    DEVICES,
    VARIANTS,
    BuildSettings,
)
from samples.bert.errors import SampleError
from samples.bert.repository import write_repository
from samples.bert.upload import DEFAULT_EXCLUDES, upload_repository


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m samples.bert", description="BERT question answering for Triton."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="write a Triton model repository")
    build.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    build.add_argument("--output", required=True, type=Path, help="model repository folder")
    weights = build.add_argument_group(
        "weights", "one of --model-id, --checkpoint or --size (random weights, the default)"
    )
    weights.add_argument(
        "--model-id",
        help="a Hugging Face Hub model to fetch (needs huggingface.co; kept in its cache), "
        f"such as {checkpoint.SQUAD_MODEL_ID}",
    )
    weights.add_argument("--revision", help="branch, tag or commit of --model-id")
    weights.add_argument(
        "--checkpoint", type=Path, help="a local save_pretrained folder of BertForQuestionAnswering"
    )
    weights.add_argument(
        "--size",
        help=f"RANDOM weights of this size: {', '.join(network.SIZES)} (default "
        f"{network.DEFAULT_SIZE}); the answers are meaningless, the serving cost is real",
    )
    weights.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
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
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        help="python on a GPU: replay batches from CUDA graphs captured per batch bucket at "
        "load (default: on, unless --torch-compile)",
    )
    build.add_argument(
        "--cuda-graph-max-batch-size",
        type=int,
        default=cuda_graphs.DEFAULT_LARGEST_BUCKET,
        help="python on a GPU: the largest batch replayed from a graph; larger ones run "
        f"eagerly (default {cuda_graphs.DEFAULT_LARGEST_BUCKET})",
    )
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
        f"the chart's image.release (default {tensorrt.NGC_RELEASE}, the chart's own)",
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
        model_id=args.model_id,
        revision=args.revision,
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
        cuda_graphs=args.cuda_graphs,
        cuda_graph_max_batch_size=args.cuda_graph_max_batch_size,
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
