"""Subprocesses that cannot outlive their time: wait with a bound, kill past it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import AnyStr


def finish(process: subprocess.Popen[AnyStr], *, timeout_s: float) -> tuple[AnyStr | None, bool]:
    """Wait up to ``timeout_s`` for ``process`` to exit, collecting what it wrote to a pipe;
    kill it if it runs past. Returns its output (None without a stdout pipe) and whether it
    had to be killed; either way the process is gone."""
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return output, False
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return output, True


def stop(
    process: subprocess.Popen[AnyStr],
    *,
    timeout_s: float,
    signal_number: int = signal.SIGTERM,
    group: bool = False,
) -> int:
    """Ask ``process`` to stop with ``signal_number`` (to its whole process group with
    ``group``, for a process started with ``start_new_session``) and kill it (the group) if it
    is still there after ``timeout_s``. Returns its exit code."""

    def send(number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, number)
            else:
                process.send_signal(number)

    if process.poll() is None:
        send(signal_number)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait()
    return process.returncode
