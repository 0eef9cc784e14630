"""``make soak``: the demo's server under a constant load for minutes, one line per minute.

The same server as ``make demo`` (the sample's model, Triton as the chart runs it), a constant
rate for ``--minutes`` (10 by default, at 200 requests a second), and for every minute: the
requests, failures, QPS, p50/p95/p99 (from ``demo/soak_minutes.py``, loaded into Locust beside
the locustfile) and the server's memory: the resident set of the ``tritonserver`` process and
of its python backend stubs, sampled every few seconds, the value at the minute's end and the
minute's peak. Written to ``soak.json`` and ``soak.csv`` in ``--out`` and printed as a table.

Every part is bounded: Locust's run time, a kill after it plus a grace period, the server
stopped on every way out. Exit codes: 0 no failure, 1 failures or the run could not be made,
2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from demo.errors import DemoError
from demo.run import (
    LOCUST_GRACE_S,
    ROOT,
    DemoSettings,
    chart_server,
    locust_command,
    progress,
    run_locust,
    run_stopping_cleanly,
)

MINUTES_PLUGIN: Final = ROOT / "demo" / "soak_minutes.py"
SAMPLE_EVERY_S: Final = 5.0
PAGE_KIB: Final = os.sysconf("SC_PAGESIZE") // 1024


def _rss_kib(pid: int) -> int:
    """Resident memory of one process (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def server_memory_mib(pid: int) -> tuple[float, float]:
    """(tritonserver, its stubs together) resident memory in MiB."""
    stubs = sum(_rss_kib(child) for child in _children(pid))
    return _rss_kib(pid) / 1024, stubs / 1024


@dataclass
class MemorySample:
    at_unix: float
    server_mib: float
    stubs_mib: float


class MemorySampler(threading.Thread):
    """Samples the server's memory every SAMPLE_EVERY_S seconds until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[MemorySample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            server, stubs = server_memory_mib(self.pid)
            self.samples.append(MemorySample(time.time(), server, stubs))
            if self._stop_event.wait(SAMPLE_EVERY_S):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


@dataclass(frozen=True)
class Minute:
    """One minute of the soak."""

    minute: int
    seconds: float
    requests: int
    failures: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_rss_mib: float
    """tritonserver's resident memory at the end of the minute."""
    stubs_rss_mib: float
    """The python backend stubs' resident memory together, at the end of the minute."""
    peak_total_rss_mib: float
    """The highest server + stubs sample within the minute."""


def join_minutes(lines: list[dict[str, Any]], samples: list[MemorySample]) -> list[Minute]:
    """Each minute's load figures with the memory sampled within it (the last sample before
    its end when none fell inside)."""
    minutes = []
    for line in lines:
        figures = dict(line)
        start = figures.pop("start_unix")
        end = start + figures["seconds"]
        within = [s for s in samples if start <= s.at_unix <= end]
        before = [s for s in samples if s.at_unix <= end]
        last = (within or before or [MemorySample(0, 0, 0)])[-1]
        peak = max((s.server_mib + s.stubs_mib for s in within or [last]), default=0.0)
        minutes.append(
            Minute(
                **figures,
                server_rss_mib=round(last.server_mib, 1),
                stubs_rss_mib=round(last.stubs_mib, 1),
                peak_total_rss_mib=round(peak, 1),
            )
        )
    return minutes


COLUMNS: Final = (
    ("minute", "min", "{:>3d}"),
    ("seconds", "s", "{:>3.0f}"),
    ("requests", "requests", "{:>8d}"),
    ("failures", "failures", "{:>8d}"),
    ("qps", "QPS", "{:>6.1f}"),
    ("p50_ms", "p50 ms", "{:>7.1f}"),
    ("p95_ms", "p95 ms", "{:>7.1f}"),
    ("p99_ms", "p99 ms", "{:>7.1f}"),
    ("server_rss_mib", "server MiB", "{:>10.1f}"),
    ("stubs_rss_mib", "stubs MiB", "{:>9.1f}"),
    ("peak_total_rss_mib", "peak MiB", "{:>8.1f}"),
)


def table(minutes: Sequence[Minute]) -> list[str]:
    header = "  ".join(f"{title:>{len(fmt.format(0))}}" for _, title, fmt in COLUMNS)
    rows = ["  ".join(fmt.format(getattr(m, name)) for name, _, fmt in COLUMNS) for m in minutes]
    return [header, *rows]


def write_reports(out_dir: Path, settings: dict[str, Any], minutes: Sequence[Minute]) -> None:
    rows = [asdict(m) for m in minutes]
    (out_dir / "soak.json").write_text(
        json.dumps({"settings": settings, "minutes": rows}, indent=2) + "\n"
    )
    with (out_dir / "soak.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[name for name, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)


def run_soak(minutes: float, qps: float, out_dir: Path, helm: Path) -> int:
    seconds = max(1, round(minutes * 60))
    demo = DemoSettings(seconds=seconds, qps=qps, out_dir=out_dir, helm=helm)
    out_dir.mkdir(parents=True, exist_ok=True)
    minutes_file = out_dir / "minutes.jsonl"
    minutes_file.unlink(missing_ok=True)
    server = chart_server(demo)
    progress(f"starting tritonserver (log: {server.log_path})")
    with server:
        assert server.pid is not None  # started by the `with`
        progress(f"soak: {qps:g} requests/s for {seconds} s against {server.http_url}")
        sampler = MemorySampler(server.pid)
        sampler.start()
        command = locust_command(demo, server.http_url)
        command[command.index("-f") + 1] += f",{MINUTES_PLUGIN}"
        os.environ["SOAK_MINUTES_FILE"] = str(minutes_file)
        try:
            code = run_locust(command, timeout_s=seconds + LOCUST_GRACE_S)
        finally:
            sampler.stop()
        progress("stopping tritonserver")
    if not minutes_file.exists():
        raise DemoError(f"the load test wrote no per-minute figures ({minutes_file})")
    lines = [json.loads(line) for line in minutes_file.read_text().splitlines() if line]
    joined = join_minutes(lines, sampler.samples)
    write_reports(out_dir, {"minutes": minutes, "qps": qps}, joined)
    for line in table(joined):
        print(line, flush=True)
    failures = sum(m.failures for m in joined)
    progress(f"wrote {out_dir / 'soak.json'} and {out_dir / 'soak.csv'}")
    if code != 0 or failures:
        progress(f"the soak had {failures} failures (locust exit code {code})")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="python -m demo.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (10)")
    parser.add_argument("--qps", type=float, default=200.0, help="requests per second (200)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "soak", help="output folder")
    parser.add_argument("--helm", type=Path, default=defaults.helm, help="helm binary")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.minutes) and 0 < args.minutes <= 24 * 60):
        parser.error(f"--minutes must be above 0 and at most a day, got {args.minutes}")
    if not (math.isfinite(args.qps) and args.qps > 0):
        parser.error(f"--qps must be greater than 0, got {args.qps}")
    return run_stopping_cleanly(
        "soak", lambda: run_soak(args.minutes, args.qps, args.out, args.helm)
    )


if __name__ == "__main__":
    sys.exit(main())
