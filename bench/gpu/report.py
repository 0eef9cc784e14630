"""What one GPU benchmark run measured, and its Markdown table and JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.gpu.perf_analyzer import PerfPoint
from bench.gpu.triton_stats import ServerCounters


@dataclass(frozen=True)
class ServedPoint:
    """The served figures at one concurrency and request size."""

    config: str
    concurrency: int
    sequences_per_request: int
    requests: int
    failures: int
    seq_per_s: float
    p50_ms: float
    p99_ms: float
    first_failure: str = ""
    server: ServerCounters | None = None
    """What Triton counted over the measured seconds."""
    gpu: str = ""
    """The GPU over the point (:meth:`GpuSummary.brief`), empty without telemetry."""


@dataclass
class Report:
    """Everything one run measured."""

    raw_seq_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Raw burst sequences per second by mode (``eager``, ``compiled``) and batch size."""
    raw_sustained_seq_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """Raw sustained sequences per second by mode and batch size (the figure of merit's base)."""
    raw_gpu: dict[str, str] = field(default_factory=dict)
    """The GPU during each sustained raw phase (``eager 256`` ...)."""
    served: list[ServedPoint] = field(default_factory=list)
    compiled_configs: set[str] = field(default_factory=set)
    """Labels of the configurations that serve the compiled network."""
    failed_configs: dict[str, str] = field(default_factory=dict)
    """Configurations whose server did not start, with the first line of why."""
    environment: dict[str, str] = field(default_factory=dict)
    graphed_configs: set[str] = field(default_factory=set)
    """Labels of the configurations that replay CUDA graphs."""
    raw_latency_ms: dict[str, dict[int, float]] = field(default_factory=dict)
    """Milliseconds per batch host to host through the model's batch runner, by mode
    (``eager``, ``graphed``) and batch size."""
    capture: dict[str, Any] = field(default_factory=dict)
    """What capturing every bucket cost in this process (``CaptureReport`` as a dict)."""
    server_capture: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The capture reports each served instance logged, by configuration."""
    server_ready_s: dict[str, float] = field(default_factory=dict)
    """Seconds from starting the server to its readiness (load, captures, warm-up)."""
    answers: dict[str, str] = field(default_factory=dict)
    """How each configuration's answers compared with the eager network's."""
    perf: list[PerfPoint] = field(default_factory=list)
    """perf_analyzer's figures at the same points."""
    perf_note: str = ""
    """Why perf_analyzer did not run, where it did not."""

    def best_raw(self, mode: str = "eager", *, sustained: bool = True) -> float:
        """The best raw figure of ``mode``: sustained where measured, else the burst."""
        figures = self.raw_sustained_seq_per_s if sustained else self.raw_seq_per_s
        if sustained and not figures.get(mode):
            figures = self.raw_seq_per_s
        return max(figures.get(mode, {}).values(), default=0.0)

    def raw_for(self, config: str, *, sustained: bool = True) -> float:
        """The raw figure a configuration is compared with: the same network, eager or compiled."""
        mode = "compiled" if config in self.compiled_configs else "eager"
        return self.best_raw(mode, sustained=sustained)

    def raw_latency_for(self, config: str, batch: int) -> float | None:
        """The raw per-batch milliseconds a configuration's latency is compared with: the
        same runner, graphed or eager (none for a compiled network)."""
        if config in self.compiled_configs:
            return None
        mode = "graphed" if config in self.graphed_configs else "eager"
        return self.raw_latency_ms.get(mode, {}).get(batch)

    def best_served(self, config: str | None = None) -> ServedPoint | None:
        points = [
            p for p in self.served if p.failures == 0 and (config is None or p.config == config)
        ]
        return max(points, key=lambda p: p.seq_per_s, default=None)

    def markdown(self) -> str:
        modes = sorted(self.raw_seq_per_s)
        batches = sorted({b for by_batch in self.raw_seq_per_s.values() for b in by_batch})
        lines = [
            "| batch | " + " | ".join(f"{m} burst | {m} sustained" for m in modes) + " |",
            "| ---: |" + " ---: | ---: |" * len(modes),
        ]
        for b in batches:
            cells = []
            for m in modes:
                sustained = self.raw_sustained_seq_per_s.get(m, {}).get(b)
                cells.append(f"{self.raw_seq_per_s[m].get(b, 0):,.0f}")
                cells.append("-" if sustained is None else f"{sustained:,.0f}")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += [f"- raw {phase}: {gpu}" for phase, gpu in self.raw_gpu.items()]
        lines += self._latency_lines()
        lines += [
            "",
            "| config | concurrency | seq/request | seq/s | served/raw | p50 ms | p99 ms "
            "| failures | seq/batch | model busy | queue ms | compute ms | in Triton ms "
            "| p50 / raw batch |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: |",
        ]
        for p in self.served:
            raw = self.raw_for(p.config)
            ratio = p.seq_per_s / raw if raw else 0.0
            counters = (
                f"{p.server.sequences_per_batch:.0f} | {p.server.model_busy:.2f} | "
                f"{p.server.queue_ms:.2f} | {p.server.compute_ms:.2f} | "
                f"{p.server.request_ms:.2f}"
                if p.server
                else "- | - | - | - | -"
            )
            raw_ms = self.raw_latency_for(p.config, p.sequences_per_request)
            latency = f"{p.p50_ms / raw_ms:.2f}" if raw_ms and p.concurrency == 1 else "-"
            lines.append(
                f"| {p.config} | {p.concurrency} | {p.sequences_per_request} | "
                f"{p.seq_per_s:,.0f} | {ratio:.2f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.failures} | {counters} | {latency} |"
            )
        lines += [
            f"- {p.config} {p.concurrency} x {p.sequences_per_request}: {p.gpu}"
            for p in self.served
            if p.gpu
        ]
        lines += [f"- {label} did not start: {why}" for label, why in self.failed_configs.items()]
        lines += [f"- {label} answers: {verdict}" for label, verdict in self.answers.items()]
        lines += [f"- {label} ready in {s:.1f} s" for label, s in self.server_ready_s.items()]
        lines += self._capture_lines()
        lines += self._side_by_side()
        lines += self._perf_lines()
        best = self.best_served()
        if best is not None and self.raw_for(best.config):
            raw = self.raw_for(best.config)
            burst = self.raw_for(best.config, sustained=False)
            lines += [
                "",
                f"Best served: {best.seq_per_s:,.0f} seq/s ({best.config}, concurrency "
                f"{best.concurrency}, {best.sequences_per_request} seq/request); raw network of "
                f"the same kind: {raw:,.0f} seq/s sustained, {burst:,.0f} burst; "
                f"served/raw = {best.seq_per_s / raw:.2f} (against the burst: "
                f"{best.seq_per_s / burst:.2f})",
            ]
        return "\n".join(lines)

    def _latency_lines(self) -> list[str]:
        modes = [m for m in ("eager", "graphed") if self.raw_latency_ms.get(m)]
        if not modes:
            return []
        batches = sorted({b for m in modes for b in self.raw_latency_ms[m]})
        lines = [
            "",
            "| batch | " + " | ".join(f"raw {m} ms" for m in modes) + " |",
            "| ---: |" + " ---: |" * len(modes),
        ]
        for b in batches:
            cells = [
                f"{self.raw_latency_ms[m][b]:.2f}" if b in self.raw_latency_ms[m] else "-"
                for m in modes
            ]
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        return lines

    def _capture_lines(self) -> list[str]:
        lines = []
        if self.capture:
            lines.append(f"- capture in this process: {capture_brief(self.capture)}")
        for label, reports in self.server_capture.items():
            for number, report in enumerate(reports, start=1):
                lines.append(f"- {label} instance {number} capture: {capture_brief(report)}")
        return lines

    def _side_by_side(self) -> list[str]:
        """Each point's seq/s and p50 / p99 under every configuration, side by side."""
        configs = list(dict.fromkeys(p.config for p in self.served))
        if len(configs) < 2:
            return []
        by_point: dict[tuple[int, int], dict[str, ServedPoint]] = {}
        for p in self.served:
            by_point.setdefault((p.concurrency, p.sequences_per_request), {})[p.config] = p
        lines = [
            "",
            "| clients x seq/request | "
            + " | ".join(f"{c} seq/s | {c} p50 / p99 ms" for c in configs)
            + " |",
            "| ---: |" + " ---: | ---: |" * len(configs),
        ]
        for (clients, per_request), points in by_point.items():
            cells = []
            for c in configs:
                at = points.get(c)
                cells += (
                    [f"{at.seq_per_s:,.0f}", f"{at.p50_ms:.1f} / {at.p99_ms:.1f}"]
                    if at
                    else ["-", "-"]
                )
            lines.append(f"| {clients} x {per_request} | " + " | ".join(cells) + " |")
        return lines

    def _perf_lines(self) -> list[str]:
        if self.perf_note:
            return ["", f"perf_analyzer: {self.perf_note}"]
        if not self.perf:
            return []
        ours = {(p.config, p.concurrency, p.sequences_per_request): p for p in self.served}
        lines = [
            "",
            "| perf_analyzer: config | clients x seq/request | seq/s | p50 ms | p99 ms "
            "| queue ms | compute ms | our client: seq/s | p50 / p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for q in self.perf:
            mine = ours.get((q.config, q.concurrency, q.sequences_per_request))
            own = (
                f"{mine.seq_per_s:,.0f} | {mine.p50_ms:.1f} / {mine.p99_ms:.1f}"
                if mine
                else "- | -"
            )
            figures = (
                f"{q.seq_per_s:,.0f} | {q.p50_ms:.1f} | {q.p99_ms:.1f} | {q.queue_ms:.2f} | "
                f"{q.compute_ms:.2f}"
                if not q.error
                else f"not measured: {q.error} | | | |"
            )
            lines.append(
                f"| {q.config} | {q.concurrency} x {q.sequences_per_request} | {figures} | {own} |"
            )
        return lines


def capture_brief(report: dict[str, Any]) -> str:
    """One line for a capture report (``CaptureReport`` as a dict)."""
    if report.get("failure"):
        return f"FAILED {report['failure']} (serving eagerly)"
    seconds = report.get("seconds", {})
    each = ", ".join(f"{b}: {float(t):.2f}" for b, t in seconds.items())
    memory = (
        f"; GPU memory: pool {report['pool_mib']:.0f} MiB, device {report['device_mib']:.0f} MiB"
        if report.get("pool_mib") is not None
        else ""
    )
    return (
        f"{len(report.get('buckets', []))} buckets in {float(report.get('total_s', 0)):.2f} s "
        f"(s per bucket: {each}){memory}"
    )


def save(report: Report, out: Path) -> str:
    """Write ``report.md`` and ``report.json`` under ``out``; returns the Markdown."""
    table = report.markdown()
    (out / "report.md").write_text(table + "\n")
    document = {
        "environment": report.environment,
        "raw_seq_per_s": report.raw_seq_per_s,
        "raw_sustained_seq_per_s": report.raw_sustained_seq_per_s,
        "raw_gpu": report.raw_gpu,
        "served": [asdict(p) for p in report.served],
        "failed_configs": report.failed_configs,
        "graphed_configs": sorted(report.graphed_configs),
        "compiled_configs": sorted(report.compiled_configs),
        "raw_latency_ms": report.raw_latency_ms,
        "capture": report.capture,
        "server_capture": report.server_capture,
        "server_ready_s": report.server_ready_s,
        "answers": report.answers,
        "perf_analyzer": [asdict(q) for q in report.perf],
        "perf_analyzer_note": report.perf_note,
    }
    (out / "report.json").write_text(json.dumps(document, indent=2))
    return table
