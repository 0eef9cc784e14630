"""``make demo``: the whole path on this machine, with no cluster and no GPU.

1. Build the sample's model repository (tiny BERT, python variant on the CPU).
2. Render the chart with ``helm template`` and take the Triton container's arguments from the
   rendered Deployment, so the demo runs the server exactly as the chart describes it.
3. Run that server locally (``LocalTriton``) and wait until it is ready.
4. Run the load test headless at a constant rate; it prints its summary and writes it to
   ``summary.json``, next to Locust's ``report.html``.

The server is stopped on every way out: success, failure, Ctrl-C or SIGTERM. Exit codes: 0 the
run had no failure, 1 it had failures or could not run, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from common.helm_pins import helm_binary
from common.processes import finish, stop
from demo.errors import DemoError
from demo.local import LocalTriton, triton_container_launch
from deployer.errors import DeployerError
from deployer.render import render
from samples.bert.build_settings import BuildSettings
from samples.bert.errors import SampleError
from samples.bert.repository import write_repository

ROOT: Final = Path(__file__).resolve().parent.parent
LOCUSTFILE: Final = ROOT / "locust" / "locustfile-bert-large.py"
HELM: Final = helm_binary("helm4")
"""Helm 4 where ``make tools`` puts it (its pin: scripts/helm-pins.toml)."""

RELEASE: Final = "demo"
LOCUST_GRACE_S: Final = 60.0
"""Beyond the run time: Locust's start, the readiness check and writing the report."""
LAGGING_SHARE: Final = 0.9


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs, and where it writes."""

    seconds: int = 60
    """How long the load runs, once the server is ready."""
    qps: float = 200.0
    """The constant request rate."""
    out_dir: Path = ROOT / "build" / "demo"
    """Where the model repository, the server's log and the reports go."""
    helm: Path = HELM
    """The helm binary that renders the chart."""
    chart: Path = ROOT / "chart"
    """The chart whose Triton arguments the local server takes."""
    ready_timeout_s: float = 180.0
    """How long the server may take to load the model."""

    @property
    def model_repository(self) -> Path:
        return self.out_dir / "models"

    @property
    def report_html(self) -> Path:
        return self.out_dir / "report.html"

    @property
    def summary_json(self) -> Path:
        return self.out_dir / "summary.json"


def progress(message: str) -> None:
    print(f"==> {message}", flush=True)


def build_model_repository(repository: Path) -> Path:
    """The tiny python variant on the CPU: two instances of one thread each, the two cores of a
    small machine. Rebuilt each time (about a second), so it always matches the sample code."""
    write_repository(
        BuildSettings(
            variant="python",
            repository=repository,
            size="tiny",
            device="cpu",
            instance_count=2,
            cpu_threads=1,
            replace=True,
        ),
        progress=lambda line: progress(f"model: {line}"),
    )
    return repository


def locust_command(settings: DemoSettings, host: str) -> list[str]:
    """The load test at a constant rate, headless, with a progress line every 5 s."""
    return [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "-H",
        host,
        "--load-shape",
        "constant",
        "--target-qps",
        f"{settings.qps:g}",
        "--run-time",
        f"{settings.seconds}s",
        "--progress-seconds",
        "5",
        "--ready-timeout",
        "30",
        "--html",
        str(settings.report_html),
        "--summary-file",
        str(settings.summary_json),
    ]


def run_locust(command: Sequence[str], *, timeout_s: float) -> int:
    """Run Locust in the foreground (its output goes straight to the terminal); its exit code.

    On Ctrl-C the terminal interrupts Locust too; it is given time to write its reports."""
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        _, killed = finish(process, timeout_s=timeout_s)
    except BaseException:
        stop(process, timeout_s=15, signal_number=signal.SIGINT)
        raise
    if killed:
        raise DemoError(f"locust did not finish within {timeout_s:.0f} s and was killed")
    return process.returncode


def read_summary(settings: DemoSettings) -> dict[str, Any]:
    """The load test's end-of-run figures (``summary.json``, which it writes)."""
    path = settings.summary_json
    if not path.exists():
        raise DemoError(f"the load test wrote no summary ({path} is missing); see its output")
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


def chart_server(settings: DemoSettings) -> LocalTriton:
    """Steps 1 and 2: the sample's repository and the Triton server the chart describes, not
    started yet (``make soak`` serves the same)."""
    progress(f"building the model repository in {settings.model_repository}")
    repository = build_model_repository(settings.model_repository)
    progress(f"rendering {settings.chart} with {settings.helm.parent.name}")
    if not settings.helm.exists():
        raise DemoError(f"{settings.helm} is missing: run `make tools`")
    objects = render(
        helm=settings.helm,
        chart=settings.chart,
        release=RELEASE,
        namespace="default",
        values={"modelRepository": str(repository.resolve())},
    )
    launch = triton_container_launch(objects)
    # As the chart writes them: the restricted-API key stays a $(reference) on the terminal.
    progress(f"Triton arguments from the chart: {' '.join(launch.written_args)}")
    return LocalTriton(
        model_repository=str(repository.resolve()),
        workdir=settings.out_dir / "triton",
        chart_args=launch.args,
        env=launch.env,
        ready_timeout_s=settings.ready_timeout_s,
    )


def run_demo(settings: DemoSettings) -> int:
    """Every step in order; returns the exit code (0: a run without failures)."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (settings.summary_json, settings.report_html):
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    server = chart_server(settings)
    progress(f"starting tritonserver (log: {server.log_path})")
    with server:
        progress(f"tritonserver is ready at {server.http_url}")
        progress(f"load: {settings.qps:g} requests/s for {settings.seconds} s")
        code = run_locust(
            locust_command(settings, server.http_url),
            timeout_s=settings.seconds + LOCUST_GRACE_S,
        )
        progress("stopping tritonserver")
    summary = read_summary(settings)
    progress(f"done in {time.monotonic() - started:.0f} s; the summary is above")
    progress(f"wrote {settings.summary_json} and {settings.report_html}")
    if summary["qps"] < LAGGING_SHARE * settings.qps:
        progress(
            f"the rate stayed below {settings.qps:g} requests/s: this machine could not keep "
            "up (try DEMO_QPS=100)"
        )
    if code != 0 or summary["failures"]:
        progress(f"the run had {summary['failures']} failures (locust exit code {code})")
        return 1
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C, so the server is stopped.
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    d = DemoSettings()
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=d.seconds, help="load duration (60)")
    parser.add_argument("--qps", type=float, default=d.qps, help="requests per second (200)")
    parser.add_argument("--out", type=Path, default=d.out_dir, help="output folder")
    parser.add_argument("--helm", type=Path, default=d.helm, help="helm binary")
    parser.add_argument("--chart", type=Path, default=d.chart, help="chart folder")
    return parser


def parse_settings(argv: Sequence[str] | None) -> DemoSettings:
    """Settings from the command line; exits 2 with a message on a bad value."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error(f"--seconds must be 1 or more, got {args.seconds}")
    if not (math.isfinite(args.qps) and args.qps > 0):
        parser.error(f"--qps must be greater than 0, got {args.qps}")
    return DemoSettings(
        seconds=args.seconds, qps=args.qps, out_dir=args.out, helm=args.helm, chart=args.chart
    )


def run_stopping_cleanly(what: str, body: Callable[[], int]) -> int:
    """Run ``body`` (a demo or a soak) as a command: SIGTERM and Ctrl-C stop the server it
    started and exit 130; an error it knows of is one line and exit 1."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return body()
    except KeyboardInterrupt:
        progress("interrupted; the server has been stopped")
        return 130
    except (DemoError, DeployerError, SampleError) as exc:
        progress(f"{what} failed: {exc}")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    return run_stopping_cleanly("demo", lambda: run_demo(settings))


if __name__ == "__main__":
    sys.exit(main())
