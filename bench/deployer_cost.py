"""The deployer's own cost, waits excluded: ``make bench-deployer``.

Each run does what a Marketplace Job does, through the deployer's public functions: ``plan`` is
``actions.make_plan`` (load the schema, validate the values, ``helm template``), ``apply`` is
``actions.apply`` (discovery, the Application applied first and its uid read back, then every
other object applied by server-side apply, owned by it), the part of ``actions.deploy`` before
its wait for readiness. Each run has a fresh API client (discovery is part of the apply, as in
a fresh Job) and a fresh namespace; the wait for readiness is left out, as it measures the
cluster rather than the deployer. ``helm template`` alone is timed next to them,
for the ratio of what the deployer adds over rendering. The figures are medians over the runs.
Writes the "Deployer" section of docs/benchmarks.md.

The cluster is a local Kubernetes control plane (``standins.kube``) started for the run and
stopped after it, or, with ``--kubeconfig``, the cluster that file names.

Usage: python -m bench.deployer_cost --helm HELM [--runs N] [--write docs/benchmarks.md]
       [--kubeconfig PATH]   (make bench-deployer)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client

from deployer import actions, render
from deployer.cluster import Cluster, connect
from deployer.deadline import Deadline
from standins.kube.control_plane import missing_prerequisite, running_control_plane_with_crds

ROOT: Final = Path(__file__).resolve().parent.parent
CHART: Final = ROOT / "chart"
SCHEMA: Final = ROOT / "schema.yaml"
TARGET_S: Final = 2.0
SECTION: Final = "## Deployer"
VALUES: Final = {"modelRepository": "gs://bucket/models"}
RUN_TIMEOUT_S: Final = 300.0
_run_numbers = itertools.count(1)


def _fresh_namespace(api: client.ApiClient) -> str:
    """A namespace of its own for one run (Pod Security "restricted", as the tests use)."""
    name = f"bench-deployer-{os.getpid() % 10000}-{next(_run_numbers)}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def _quiet(line: str) -> None:
    """The deployer's progress lines, not printed: the bench prints one line a run."""


def one_run(
    *, helm: Path, connect_api: Callable[[], client.ApiClient], namespace: str | None = None
) -> dict[str, float]:
    """Seconds spent in each phase of one deploy, waits excluded, into ``namespace`` (a fresh
    one when None, deleted afterwards). ``connect_api`` makes the run's fresh API client."""
    api = connect_api()
    own_namespace = namespace is None
    target = _fresh_namespace(api) if namespace is None else namespace
    try:
        with tempfile.TemporaryDirectory() as folder:
            values_file = Path(folder) / "values.yaml"
            values_file.write_text(
                yaml.safe_dump({"name": "triton", "namespace": target, **VALUES})
            )
            inputs = actions.Inputs(chart=CHART, schema=SCHEMA, values=values_file, helm=helm)
            start = time.perf_counter()
            plan = actions.make_plan(inputs)
            planned = time.perf_counter()
            with Cluster(api, namespace=target, deadline=Deadline(RUN_TIMEOUT_S)) as cluster:
                actions.apply(plan, cluster, report=_quiet)
            applied = time.perf_counter()
    finally:
        if own_namespace:
            core: Any = client.CoreV1Api(api)
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(target)
    return {"plan": planned - start, "apply": applied - planned, "total": applied - start}


def render_alone(helm: Path) -> float:
    """Seconds of ``helm template`` of the same chart and values, alone."""
    start = time.perf_counter()
    render.render(helm=helm, chart=CHART, release="triton", namespace="triton", values=VALUES)
    return time.perf_counter() - start


def medians(runs: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The median of each phase over ``runs`` runs, one line of progress a run."""
    results = []
    for number in range(1, runs + 1):
        results.append(run())
        phases = ", ".join(f"{key} {seconds * 1000:.0f} ms" for key, seconds in results[-1].items())
        print(f"run {number}/{runs}: {phases}", flush=True)
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def section(figures: dict[str, float], *, helm: Path, runs: int) -> str:
    """The Markdown section for ``figures`` (medians of plan, apply, total and render)."""
    date = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| {phase} | {figures[phase] * 1000:.0f} ms | {figures[phase] / figures['total']:.0%} |"
        for phase in ("plan", "apply", "total")
    ]
    return "\n".join(
        [
            SECTION,
            "",
            "The deployer's own cost for the default chart (`schema.yaml` defaults plus a model "
            "repository), through its own functions: plan (validate the values, `helm template`) "
            "and apply (discovery, the Application first, then server-side apply of every other "
            "object, owned by it) against a real Kubernetes API server (the local control "
            "plane of `standins/kube` on loopback; a fresh client and namespace each run, as a "
            "Marketplace Job starts fresh). Waiting for readiness is excluded.",
            "",
            f"Command: `make bench-deployer` ({runs} runs, the median of each phase on its own, "
            f"so shares need not add up to 100 %; {date}; "
            f"{platform.machine()}, {os.cpu_count()} cores at a load average of "
            f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
            f"helm {helm.parent.name.removeprefix('helm-')}).",
            "",
            "| phase | median | share |",
            "| --- | --- | --- |",
            *rows,
            "",
            f"Ratios: total / 2 s target = {figures['total'] / TARGET_S:.2f} (under 1 meets "
            f"it); total / `helm template` alone ({figures['render'] * 1000:.0f} ms) = "
            f"{figures['total'] / figures['render']:.1f}.",
            "",
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Replace the Deployer section of ``path`` (or add it), leaving other sections alone."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        path.write_text(current.rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + text + ("\n" + after if after else ""))


def measure(*, helm: Path, runs: int, kubeconfig: str) -> dict[str, float]:
    """The medians of ``runs`` runs against the cluster of ``kubeconfig``, after one run not
    counted (imports and caches warm), and of ``helm template`` alone."""

    def connect_api() -> Any:
        return connect(kubeconfig=kubeconfig)

    one_run(helm=helm, connect_api=connect_api)
    figures = medians(runs, lambda: one_run(helm=helm, connect_api=connect_api))
    figures["render"] = statistics.median(render_alone(helm) for _ in range(runs))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--helm", type=Path, required=True)
    parser.add_argument(
        "--kubeconfig", help="another cluster (default: a local control plane, for the run)"
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path, help="markdown file whose Deployer section to set")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be 1 or more, not {args.runs}")
    if not args.helm.is_file():
        parser.error(f"--helm {args.helm}: no such file (make tools installs helm under .tools)")
    if args.kubeconfig:
        figures = measure(helm=args.helm, runs=args.runs, kubeconfig=args.kubeconfig)
    else:
        reason = missing_prerequisite()
        if reason:
            print(f"no local control plane here: {reason}", file=sys.stderr)
            return 1
        print("starting a local control plane (standins/kube) ...", flush=True)
        with (
            tempfile.TemporaryDirectory() as folder,
            running_control_plane_with_crds(Path(folder)) as plane,
        ):
            figures = measure(helm=args.helm, runs=args.runs, kubeconfig=str(plane.kubeconfig))
    text = section(figures, helm=args.helm, runs=args.runs)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.write, text)
        print(f"wrote the Deployer section of {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
