"""How long the local Triton takes to load the BERT sample from Cloud Storage against a local
path: the first start, later starts, and loads in a running server.

It writes the python-variant repository (``samples.bert.repository``), uploads it to a real
``gcp-storage-emulator`` on loopback (``samples.bert.upload``), renders the chart's Triton
arguments (explicit model control, the model loaded at start) and serves the repository with
the local Triton (``demo.local.LocalTriton``) from the local folder and from ``gs://``. Each
round serves both sources in turn (so a busy machine weighs on both alike): a start, timed from
process start until ``/v2/health/ready``, then an unload and a timed load through the
repository API. It prints a Markdown table of medians, with the per-round difference between
the sources. The emulator stands in for Cloud Storage: what it measures is Triton copying the
repository before loading it, not the network of a real bucket. Every wait is bounded.

    python -m bench.model_loading --size base --rounds 5 --out build/bench-model-loading
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from common.helm_pins import helm_binary
from demo.local import LocalTriton, triton_container_launch
from demo.triton_install import find_install, stage_backends
from deployer.render import render
from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.repository import write_repository
from samples.bert.upload import upload_repository
from standins.gcs_emulator import running_emulator

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "models"
ADMIN_HEADER = "triton-admin-key"
"""The chart's default ``security.restrictedApi.header``: the repository API needs it."""


@dataclass(frozen=True)
class SourceResult:
    """What loading from one source took, in seconds."""

    source: str
    """``local`` or ``gcs-emulator``."""
    repository: str
    """The path or ``gs://`` URL Triton read."""
    start_s: list[float]
    """Each start, process start until ready; the first is the first load."""
    reload_s: list[float]
    """Each load of the model through the repository API in a running server."""

    @property
    def repeated_start_median_s(self) -> float:
        """Median of the starts after the first."""
        return statistics.median(self.start_s[1:] or self.start_s)

    @property
    def reload_median_s(self) -> float:
        return statistics.median(self.reload_s)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (google-cloud-storage reads them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _post(url: str, headers: dict[str, str], timeout_s: float) -> None:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


@dataclass(frozen=True)
class Source:
    """One place Triton reads the repository from."""

    name: str
    """``local`` or ``gcs-emulator``."""
    repository: str
    """The folder or ``gs://`` URL."""
    env: dict[str, str]
    """The server's environment (the chart's, plus the emulator's endpoint for ``gs://``)."""
    workdir: Path
    """Where its backends are staged (once) and its log written."""


def one_round(
    source: Source, *, chart_args: Sequence[str], timeout_s: float
) -> tuple[float, float]:
    """Start the local Triton on ``source`` (timed until ready), unload the model and load it
    again through the repository API (timed), stop. Returns (start, load) seconds."""
    server = LocalTriton(
        model_repository=source.repository,
        workdir=source.workdir,
        chart_args=chart_args,
        env=source.env,
        ready_timeout_s=timeout_s,
    )
    began = time.monotonic()
    server.start()
    try:
        start_s = time.monotonic() - began
        headers = {ADMIN_HEADER: source.env["TRITON_ADMIN_KEY"]}
        headers["Content-Type"] = "application/json"
        models = f"{server.http_url}/v2/repository/models/{contract.DEFAULT_MODEL_NAME}"
        _post(f"{models}/unload", headers, timeout_s)
        began = time.monotonic()
        _post(f"{models}/load", headers, timeout_s)
        return start_s, time.monotonic() - began
    finally:
        server.stop()


def measure(
    sources: Sequence[Source], *, chart_args: Sequence[str], rounds: int, timeout_s: float
) -> list[SourceResult]:
    """``rounds`` rounds, each serving every source in turn, so that a busy machine weighs on
    both alike (the sources alternate rather than run one after the other). Backends are
    staged before timing, so round 0 differs from the rest only by being the first read of
    the repository."""
    install = find_install()
    for source in sources:
        stage_backends(install, source.workdir)
    timings: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sources}
    for round_number in range(rounds):
        for source in sources:
            print(f"round {round_number + 1}/{rounds}: {source.name}")
            timings[source.name].append(
                one_round(source, chart_args=chart_args, timeout_s=timeout_s)
            )
    return [
        SourceResult(
            source=s.name,
            repository=s.repository,
            start_s=[start for start, _ in timings[s.name]],
            reload_s=[load for _, load in timings[s.name]],
        )
        for s in sources
    ]


def markdown(results: Sequence[SourceResult], *, size: str, megabytes: float) -> str:
    """The table docs/model-loading.md shows; with two sources, a last row of the median of
    each round's difference (second source minus first)."""
    lines = [
        f"| source ({size}, {megabytes:.1f} MB) | first start | later starts (median) | "
        "load in a running server (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.source} | {result.start_s[0]:.2f} s | "
            f"{result.repeated_start_median_s:.2f} s | {result.reload_median_s:.2f} s |"
        )
    if len(results) == 2:
        first, second = results
        starts = [b - a for a, b in zip(first.start_s, second.start_s, strict=True)]
        loads = [b - a for a, b in zip(first.reload_s, second.reload_s, strict=True)]
        lines.append(
            f"| {second.source} minus {first.source}, per round | {starts[0]:+.2f} s | "
            f"{statistics.median(starts[1:]):+.2f} s | {statistics.median(loads):+.2f} s |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Build, upload, measure both sources; returns what is written to ``--out``."""
    with tempfile.TemporaryDirectory(prefix="bench-model-loading-") as scratch:
        work = Path(scratch)
        repository = work / "models"
        write_repository(
            BuildSettings(
                variant="python",
                repository=repository,
                size=args.size,
                max_batch_size=args.max_batch_size,
            ),
            progress=print,
        )
        megabytes = sum(p.stat().st_size for p in repository.rglob("*") if p.is_file()) / 1e6
        values = {
            "modelRepository": f"gs://{BUCKET}/{args.size}",
            "server": {"modelControlMode": "explicit", "extraArgs": ["--load-model=bert"]},
        }
        launch = triton_container_launch(
            render(
                helm=args.helm,
                chart=ROOT / "chart",
                release="bench",
                namespace="bench",
                values=values,
            )
        )
        with running_emulator(work / "emulator.log") as endpoint:
            url = f"gs://{BUCKET}/{args.size}"
            with _environment(STORAGE_EMULATOR_HOST=endpoint):
                from google.cloud import storage

                storage.Client().create_bucket(BUCKET)
                upload_repository(repository, url, progress=lambda _: None)
            sources = [
                Source("local", str(repository), dict(launch.env), work / "triton-local"),
                Source(
                    "gcs-emulator",
                    url,
                    {**launch.env, "CLOUD_STORAGE_EMULATOR_ENDPOINT": endpoint},
                    work / "triton-gcs",
                ),
            ]
            results = measure(
                sources, chart_args=launch.args, rounds=args.rounds, timeout_s=args.timeout
            )
    table = markdown(results, size=args.size, megabytes=megabytes)
    return {
        "size": args.size,
        "max_batch_size": args.max_batch_size,
        "repository_megabytes": round(megabytes, 1),
        "results": [
            {
                **asdict(r),
                "repeated_start_median_s": r.repeated_start_median_s,
                "reload_median_s": r.reload_median_s,
            }
            for r in results
        ],
        "table": table,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=("tiny", "base", "large"))
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=1,
        help="1 warms one sequence only, so the figures are loading, not warm-up",
    )
    parser.add_argument("--rounds", type=int, default=5, help="starts (and loads) per source")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of every wait (s)")
    parser.add_argument("--helm", type=Path, default=helm_binary("helm4"))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-model-loading")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: the first start and the later ones")
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"model-loading-{args.size}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
