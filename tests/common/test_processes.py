"""Subprocesses with a bound, on real processes.

Cases: a process that ends in time gives its output and is not killed; one that runs past its
time is killed and its output so far returned; ``stop`` ends a process with SIGTERM, kills one
that ignores it, and with ``group`` reaches its children too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from common.processes import brief_go_environment, finish, stop


def _python(code: str, *, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def test_a_process_that_ends_in_time() -> None:
    output, killed = finish(_python("print('done')"), timeout_s=30)
    assert (output, killed) == ("done\n", False)


def test_a_process_past_its_time_is_killed() -> None:
    process = _python("import time; print('started', flush=True); time.sleep(60)")
    started = time.monotonic()
    output, killed = finish(process, timeout_s=2)
    assert killed and output == "started\n"
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 30


def test_stop_asks_first() -> None:
    process = _python("import time; time.sleep(60)")
    assert stop(process, timeout_s=10) == -signal.SIGTERM


def test_stop_kills_what_ignores_the_signal() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    process = _python(code)
    assert process.stdout is not None and process.stdout.readline() == "1\n"
    assert stop(process, timeout_s=1) == -signal.SIGKILL


def test_stop_reaches_the_whole_group() -> None:
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    process = _python(code, new_session=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    stop(process, timeout_s=10, group=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its group's stop")


def test_a_brief_go_program_runs_without_its_collector_and_keeps_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/somewhere/config")
    monkeypatch.setenv("GOGC", "100")
    environment = brief_go_environment()
    assert environment["GOGC"] == "off"
    assert environment["KUBECONFIG"] == "/somewhere/config"
    assert os.environ["GOGC"] == "100"  # this process's own is left alone
