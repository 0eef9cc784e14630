"""Subprocesses that cannot outlive their time: wait with a bound, kill past it; servers
started with their output in a log file, waited for with a bound, stopped however a ``with``
block ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr, Self

from common.waiting import wait_until


def brief_go_environment() -> dict[str, str]:
    """This process's environment for a Go program that is done within seconds to minutes
    (``helm template``, ``helm install --wait``, ``kubectl``): its garbage collector off. A
    short run frees nothing that matters and the collector only adds CPU: a third of ``helm
    template``'s and a fifth of ``kubectl``'s, measured on a 2-core machine. Never for a
    server."""
    return {**os.environ, "GOGC": "off"}


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


def start_logged(
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = False,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its stdout and stderr appended to ``log`` (a file, so a long run
    never fills a pipe and stalls); with ``new_session`` in a session of its own, which
    :func:`stop` with ``group`` ends with every child it started."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=new_session,
            preexec_fn=preexec_fn,
        )


class ExitedError(RuntimeError):
    """The process exited while it was waited for."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


def wait_serving(
    process: subprocess.Popen[Any],
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    interval_s: float = 0.1,
) -> bool:
    """Poll ``ready`` until it holds (True) or ``timeout_s`` passes (False); raises
    :class:`ExitedError` as soon as ``process`` has exited, since a dead server will never be
    ready."""

    def serving() -> bool:
        if process.poll() is not None:
            raise ExitedError(process.returncode)
        return ready()

    return wait_until(serving, timeout_s=timeout_s, interval_s=interval_s)


class Service:
    """Something a program starts and stops (a server, a cluster of processes): entering a
    ``with`` block starts it, leaving the block stops it, however the block ends."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
