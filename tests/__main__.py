"""``python -m tests [LANE ...] [PYTEST ARGUMENTS]``: run the test tiers as separate pytest
processes, side by side where that is safe (``tests.tiers.STARTS_AFTER``), with a progress line and
one summary line per lane.

Without arguments every lane but ``gpu`` runs, as ``make test`` and CI do; ``render`` alone is
the fast lane (``make test-fast``). Each lane writes ``build/test/<lane>.log`` (pytest's output)
and ``<lane>.xml`` (JUnit), keeps its own session fixtures (one control plane, one Triton), and
is stopped with SIGINT on Ctrl-C or SIGTERM, so its fixtures still stop what they started. The
last line adds the lanes up; the exit code is 0 only when every lane passed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

from common.processes import stop
from tests.chart import render_cache
from tests.tiers import (
    LANES,
    NICENESS,
    ONE_WORKER_MODULE_LANES,
    RATE_MEASURING_MODULES,
    XDIST_WORKERS,
    startable,
)

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_EVERY_S = 30.0
NO_TESTS_COLLECTED = 5  # pytest's exit code when a selection is empty
FAILURE_LINE_CHARS = 300


def lane_environment() -> dict[str, str]:
    """This environment, with bytecode written: a dozen pytest processes and hundreds of our
    programs' runs import the same modules, and under ``PYTHONDONTWRITEBYTECODE`` each compiles
    them again, pytest's assertion rewriting of the test modules included (2 s of CPU a pytest
    process). The files go to the ``__pycache__`` folders git and the image builds ignore."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Outcome:
    """What one lane's JUnit report says."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """Each failed test's id and the first line of why, so a CI log's tail names them."""

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def read_junit(path: Path) -> Outcome:
    """Count the test cases of a JUnit report (errors count as failures)."""
    outcome = Outcome()
    if not path.is_file():
        return outcome
    for case in ElementTree.parse(path).iter("testcase"):
        skipped = case.find("skipped")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome.failed += 1
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            why = (problem.get("message") or "").strip().splitlines() or ["no message"]
            outcome.failures.append(f"{test_id}: {why[0][:FAILURE_LINE_CHARS]}")
        elif skipped is not None:
            outcome.skipped += 1
            outcome.skip_reasons[skipped.get("message", "no reason given")] += 1
        else:
            outcome.passed += 1
    return outcome


RESULT_CHARACTERS = frozenset(".FEsxX")


def progress(log: Path) -> str:
    """How many tests ``log`` shows as done (pytest's ``-q`` progress lines: one character a
    test, then `` [ NN%]``), or ``collecting``."""
    if not log.is_file():
        return "starting"
    done = 0
    for line in log.read_text(errors="replace").splitlines():
        marks = line.split(" [", 1)[0].strip()
        if marks and set(marks) <= RESULT_CHARACTERS:
            done += len(marks)
    return f"{done} done" if done else "collecting"


@dataclass
class Lane:
    """One pytest process and where it writes."""

    name: str
    out: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """User and system time of pytest and every process it reaped (servers, helm, builds):
    where the machine's time went when the lanes share it."""

    def reap(self) -> int | None:
        """The exit code once pytest has ended (None before), with its CPU time recorded."""
        assert self.process is not None
        if self.process.returncode is not None:
            return self.process.returncode
        pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.seconds = time.monotonic() - self.started
        return self.process.returncode

    @property
    def log(self) -> Path:
        return self.out / f"{self.name}.log"

    @property
    def junit(self) -> Path:
        return self.out / f"{self.name}.xml"

    def command(self, extra: Sequence[str]) -> list[str]:
        command = [sys.executable, "-m", "pytest", "-q", "-m", LANES[self.name]]
        command += ["--junitxml", str(self.junit), "-o", "junit_family=xunit1"]
        workers = XDIST_WORKERS.get(self.name, 0)
        if workers:
            command += ["-n", str(workers)]
            if self.name in ONE_WORKER_MODULE_LANES:
                command += ["-p", "tests.xdist_modules"]
        if self.name == "rates" and not extra:  # arguments may name tests: then collect all
            command += RATE_MEASURING_MODULES
        return command + list(extra)

    def start(self, extra: Sequence[str]) -> None:
        self.junit.unlink(missing_ok=True)
        niceness = NICENESS.get(self.name)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(extra),
                cwd=ROOT,
                env=lane_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=partial(os.nice, niceness) if niceness else None,
            )
        self.started = time.monotonic()


def run_lanes(lanes: list[Lane], extra: Sequence[str], began: float) -> dict[str, int]:
    """Start each lane once the lanes it waits for have ended (``tests.tiers.STARTS_AFTER``),
    report progress until all have ended; their exit codes."""
    chosen = {lane.name for lane in lanes}
    waiting = [lane.name for lane in lanes]
    by_name = {lane.name: lane for lane in lanes}
    codes: dict[str, int] = {}
    next_report = time.monotonic() + PROGRESS_EVERY_S
    while len(codes) < len(lanes):
        for name in startable(waiting, set(codes), chosen):
            waiting.remove(name)
            by_name[name].start(extra)
            print(f"==> {name}: pytest -m '{LANES[name]}' (log: {by_name[name].log})", flush=True)
        time.sleep(0.5)
        for lane in lanes:
            if lane.name in codes or lane.process is None:
                continue
            code = lane.reap()
            if code is not None:
                codes[lane.name] = code
                print(f"==> {lane.name}: {summary(lane, codes[lane.name])}", flush=True)
        if time.monotonic() >= next_report and len(codes) < len(lanes):
            running = [
                f"{lane.name} {progress(lane.log)}"
                for lane in lanes
                if lane.process is not None and lane.name not in codes
            ]
            print(f"    {time.monotonic() - began:4.0f} s: " + ", ".join(running), flush=True)
            next_report += PROGRESS_EVERY_S
    return codes


def summary(lane: Lane, code: int) -> str:
    outcome = read_junit(lane.junit)
    line = f"{outcome.line()} in {lane.seconds:.0f} s (CPU {lane.cpu_seconds:.0f} s)"
    if code not in (0, NO_TESTS_COLLECTED) and outcome.failed == 0:
        line += f" (pytest exited {code}: see {lane.log})"
    for reason, count in sorted(outcome.skip_reasons.items()):
        line += f"\n      skipped {count}: {reason}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    names = []
    while argv and not argv[0].startswith("-"):
        name = argv.pop(0)
        if name not in LANES:
            print(f"no lane {name!r}: choose from {', '.join(LANES)}", file=sys.stderr)
            return 2
        names.append(name)
    extra = argv  # the rest goes to every pytest
    out = ROOT / "build" / "test"
    chosen = set(names) or {name for name in LANES if name != "gpu"}
    out.mkdir(parents=True, exist_ok=True)
    render_cache.prune()
    all_lanes = [Lane(name, out) for name in LANES if name in chosen]

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        for lane in all_lanes:
            if lane.process is not None:
                stop(lane.process, timeout_s=120, signal_number=signal.SIGINT)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    began = time.monotonic()
    codes = run_lanes(all_lanes, extra, began)
    total = Outcome()
    print(f"==> lanes done in {time.monotonic() - began:.0f} s", flush=True)
    for lane in all_lanes:
        outcome = read_junit(lane.junit)
        total.passed += outcome.passed
        total.failed += outcome.failed
        total.skipped += outcome.skipped
        total.failures += [f"{lane.name}: {failure}" for failure in outcome.failures]
        print(
            f"    {lane.name:9} {outcome.line()} in {lane.seconds:.0f} s"
            f" (CPU {lane.cpu_seconds:.0f} s)",
            flush=True,
        )
    for failure in total.failures:
        print(f"  FAILED {failure}", flush=True)
    print(f"total: {total.line()}", flush=True)
    failed = [name for name, code in codes.items() if code not in (0, NO_TESTS_COLLECTED)]
    return 1 if failed or total.failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
