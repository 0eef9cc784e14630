"""What the sweep takes from the chart: Triton's container as the chart runs it (plain, or behind
its MPS launcher) and the arguments of its perf_analyzer test Job, rendered with helm or read
from the file ``--save-chart-args`` writes where helm runs (a GPU machine may have none)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import BenchError
from bench.gpu import perf_analyzer
from demo.local import TRITONSERVER, ContainerLaunch, triton_container_launch
from deployer.render import render

CHART = Path(__file__).resolve().parents[2] / "chart"


def chart_launch(
    *, helm: Path | None, args_file: Path | None, mps_control: str | None = None
) -> ContainerLaunch:
    """Triton's container as the chart runs it (with ``mps_control``: as it runs it with
    ``gpu.mps.enabled``, its launcher starting that control program): rendered now with
    ``helm``, or read from a file written where helm runs (a GPU machine may have none), either
    a JSON list of the arguments or an object with the container's ``command`` and ``args``."""
    if helm is not None:
        values: dict[str, object] = {"modelRepository": "gs://bucket/models"}
        if mps_control is not None:
            values["gpu"] = {"count": 1, "mps": {"enabled": True, "controlPath": mps_control}}
        objects = render(
            helm=helm, chart=CHART, release="bench", namespace="default", values=values
        )
        return triton_container_launch(objects)
    if args_file is None:
        raise BenchError("pass --helm PATH (renders the chart) or --chart-args FILE")
    document = json.loads(args_file.read_text())
    if mps_control is not None and isinstance(document, dict) and "mps" in document:
        # Rendered for the control program's path on the machine that wrote the file.
        rendered = document["mps"]
        written_path = str(rendered.get("control_path", ""))
        document = {
            "command": [
                str(c).replace(written_path, mps_control) if written_path else str(c)
                for c in rendered["command"]
            ],
            "args": rendered["args"],
        }
    if isinstance(document, list):
        command, written = [TRITONSERVER], [str(a) for a in document]
    else:
        command = [str(c) for c in document["command"]]
        written = [str(a) for a in document["args"]]
    if mps_control is not None and command == [TRITONSERVER]:
        raise BenchError(
            f"{args_file} holds no MPS launcher: pass --helm, or write the container's command "
            "and args as the chart renders them with gpu.mps.enabled"
        )
    return ContainerLaunch(command=command, args=written, written_args=written, env={})


def perf_analyzer_args(*, helm: Path | None, args_file: Path | None) -> list[str]:
    """The arguments of the chart's perf_analyzer test Job: rendered now with ``helm``, or read
    from the file ``--save-chart-args`` wrote (its ``perf_analyzer`` list)."""
    if helm is not None:
        values = {"modelRepository": "gs://bucket/models", "perfAnalyzer": {"enabled": True}}
        objects = render(
            helm=helm, chart=CHART, release="bench", namespace="default", values=values
        )
        return perf_analyzer.job_args(objects)
    document = json.loads(args_file.read_text()) if args_file else None
    if not isinstance(document, dict) or "perf_analyzer" not in document:
        raise BenchError(
            f"{args_file} holds no perf_analyzer arguments: write the file with "
            "--save-chart-args where helm runs, or pass --helm"
        )
    return [str(arg) for arg in document["perf_analyzer"]]


def save_chart_args(*, helm: Path, out: Path, mps_control_path: str) -> None:
    """Write what ``--chart-args`` reads on a machine without helm: Triton's container as the
    chart renders it, plain and with ``gpu.mps.enabled`` (its launcher starting the control
    program at ``mps_control_path``), and the perf_analyzer Job's arguments."""
    plain = chart_launch(helm=helm, args_file=None)
    with_mps = chart_launch(helm=helm, args_file=None, mps_control=mps_control_path)
    document = {
        "command": plain.command,
        "args": plain.written_args,
        "mps": {
            "command": with_mps.command,
            "args": with_mps.written_args,
            "control_path": mps_control_path,
        },
        "perf_analyzer": perf_analyzer_args(helm=helm, args_file=None),
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
