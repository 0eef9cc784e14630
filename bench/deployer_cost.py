"""The deployer's own cost, waits excluded: validate, render and apply the default chart
against the Kubernetes API emulator on loopback. ``make bench-deployer`` runs it.

Each run is a fresh emulator and a fresh client, as a Marketplace Job is: discovery is part of
the apply. The figures are medians over the runs, each phase with its share of the total, and
two ratios from the same run: the total against the 2 s target, and against ``helm template``
alone (what the deployer adds over rendering). Writes the "Deployer" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from deployer import application, objects, render, values
from deployer.cluster import Cluster
from tests.conftest import CHART_DIR, CRDS_DIR, ROOT
from tests.deployer.apiserver import EmulatedCluster

TARGET_S = 2.0
SECTION = "## Deployer"
VALUES = {"name": "triton", "namespace": "triton", "modelRepository": "gs://bucket/models"}


def one_run(helm: Path) -> dict[str, float]:
    """Seconds spent in each phase of one deploy, waits excluded."""
    emulator = EmulatedCluster(crds_dir=CRDS_DIR)
    try:
        start = time.perf_counter()
        schema = values.load_schema(ROOT / "schema.yaml")
        release = values.resolve(schema, VALUES)
        validated = time.perf_counter()
        rendered = render.render(
            helm=helm,
            chart=CHART_DIR,
            release=release.name,
            namespace=release.namespace,
            values=release.chart_values,
        )
        regular, _ = objects.split_hooks(rendered)
        rendered_at = time.perf_counter()
        configuration = client.Configuration()
        configuration.host = emulator.url
        with Cluster(client.ApiClient(configuration), namespace=release.namespace) as target:
            prepared = application.prepare(
                regular,
                namespace=release.namespace,
                namespaced=target.namespaced_kinds(regular),
                application=application.find(regular),
                application_uid=None,
            )
            target.apply_all(prepared)
        applied = time.perf_counter()
    finally:
        emulator.stop()
    return {
        "validate": validated - start,
        "render": rendered_at - validated,
        "apply": applied - rendered_at,
        "total": applied - start,
    }


def medians(runs: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    results = [run() for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def section(helm: Path, runs: int) -> str:
    ours = medians(runs, lambda: one_run(helm))
    date = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| {phase} | {ours[phase] * 1000:.0f} ms | {ours[phase] / ours['total']:.0%} |"
        for phase in ("validate", "render", "apply", "total")
    ]
    return "\n".join(
        [
            SECTION,
            "",
            "The deployer's own cost for the default chart (`schema.yaml` defaults plus a model "
            "repository): validate the values, `helm template`, then discovery and server-side "
            "apply of every object against the API emulator on loopback (a fresh emulator and "
            "client each run, as a Marketplace Job starts fresh). Waiting for readiness is "
            "excluded.",
            "",
            f"Command: `make bench-deployer` ({runs} runs, the median of each phase on its own, "
            f"so shares need not add up to 100 %; {date}; "
            f"{platform.machine()}, Python {platform.python_version()}, "
            f"helm {helm.parent.name.removeprefix('helm-')}).",
            "",
            "| phase | median | share |",
            "| --- | --- | --- |",
            *rows,
            "",
            f"Ratios: total / 2 s target = {ours['total'] / TARGET_S:.2f} (under 1 meets it); "
            "total / render phase (`helm template` and parsing) = "
            f"{ours['total'] / ours['render']:.1f}.",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--helm", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path, help="markdown file whose Deployer section to set")
    args = parser.parse_args()
    one_run(args.helm)  # warm up imports and the CRD cache; not counted
    text = section(args.helm, args.runs)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.write, text)
        print(f"wrote the Deployer section of {args.write}")


if __name__ == "__main__":
    main()
