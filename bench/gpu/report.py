"""What one GPU benchmark run measured, and its Markdown table and JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
        lines += [
            "",
            "| config | concurrency | seq/request | seq/s | served/raw | p50 ms | p99 ms "
            "| failures | seq/batch | model busy | queue ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in self.served:
            raw = self.raw_for(p.config)
            ratio = p.seq_per_s / raw if raw else 0.0
            counters = (
                f"{p.server.sequences_per_batch:.0f} | {p.server.model_busy:.2f} | "
                f"{p.server.queue_ms:.1f}"
                if p.server
                else "- | - | -"
            )
            lines.append(
                f"| {p.config} | {p.concurrency} | {p.sequences_per_request} | "
                f"{p.seq_per_s:,.0f} | {ratio:.2f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.failures} | {counters} |"
            )
        lines += [
            f"- {p.config} {p.concurrency} x {p.sequences_per_request}: {p.gpu}"
            for p in self.served
            if p.gpu
        ]
        lines += [f"- {label} did not start: {why}" for label, why in self.failed_configs.items()]
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
    }
    (out / "report.json").write_text(json.dumps(document, indent=2))
    return table
