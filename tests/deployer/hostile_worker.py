"""Runs the deployer's command line (``cli.main``) on each values path given, one after the
other in this process, and prints one JSON line per path: the exit code, what it wrote to
stderr, the seconds it took (wall clock and CPU), the process's peak memory so far, and any
exception that escaped ``main`` with its traceback. The hostile-values tests start it under an
address-space limit (RLIMIT_AS), so a value that tried to take gigabytes would end as a
MemoryError here.

    python -m tests.deployer.hostile_worker --schema S --chart C --helm H --kubeconfig K PATH...
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from deployer.cli import main as deployer_main

CASE_CPU_SECONDS = 10
"""A case that computes longer than this (CPU time: the tests share the machine, often at a low
priority, so the wall clock says little of the deployer's work) is stopped, and reported with
the traceback of where it was."""
CASE_WALL_SECONDS = 120
"""A case that runs longer than this, whatever its CPU time, got past validation and is waiting
on the (silent) API server: it is stopped, and reported with the traceback of where it waited.
The deployer's own ``--timeout`` ends such a wait first; this is the guard behind it."""


def _stop(signum: int, frame: object) -> None:
    limit = f"{CASE_CPU_SECONDS} s of CPU" if signum == signal.SIGPROF else f"{CASE_WALL_SECONDS} s"
    raise TimeoutError(f"still running after {limit}")


def peak_rss_kib() -> int:
    """This process image's peak resident memory (``VmHWM``). getrusage's ``ru_maxrss`` would
    carry over the peak of the process that forked this one (Linux keeps it across exec), so
    a large test runner would read as a large worker."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def run_one(path: str, common: list[str]) -> dict[str, object]:
    stderr, stdout = io.StringIO(), io.StringIO()
    escaped = ""
    start, cpu_start = time.perf_counter(), time.process_time()
    signal.signal(signal.SIGALRM, _stop)
    signal.signal(signal.SIGPROF, _stop)
    signal.setitimer(signal.ITIMER_PROF, CASE_CPU_SECONDS)
    signal.alarm(CASE_WALL_SECONDS)
    try:
        with redirect_stderr(stderr), redirect_stdout(stdout):
            code = deployer_main(["deploy", "--values", path, *common])
    except BaseException:  # what escapes main is the failure the tests look for
        code = -1
        escaped = traceback.format_exc()[-4000:]
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.alarm(0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "path": path,
        "code": code,
        "stderr": stderr.getvalue(),
        "stdout": stdout.getvalue()[:4000],
        "escaped": escaped,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "max_rss_kib": peak_rss_kib(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--schema", "--chart", "--helm", "--kubeconfig"):
        parser.add_argument(flag, required=True)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    common = ["--schema", args.schema, "--chart", args.chart, "--helm", args.helm]
    common += ["--kubeconfig", args.kubeconfig, "--timeout", "5", "--poll-interval", "0.1"]
    for path in args.paths:
        print(json.dumps(run_one(path, common)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
