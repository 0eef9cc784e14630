"""A real ``gcp-storage-emulator`` on loopback, in memory, for benchmarks and tests that load a
``gs://`` repository without Google Cloud: Triton reaches it through
``CLOUD_STORAGE_EMULATOR_ENDPOINT``, ``google-cloud-storage`` through ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from common.processes import stop
from common.waiting import wait_until


class EmulatorError(RuntimeError):
    """The emulator exited or did not answer in time; the message carries its log."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_emulator(log: Path, *, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Start the emulator, yield its ``http://127.0.0.1:PORT`` once it answers, stop it (by the
    PID started here) on the way out, whatever happened."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [str(executable), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answers() -> bool:
        if process.poll() is not None:
            raise EmulatorError(f"gcp-storage-emulator exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError):
            urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=2).close()
            return True
        return False

    try:
        if not wait_until(answers, timeout_s=start_timeout_s, interval_s=0.2):
            raise EmulatorError(
                f"gcp-storage-emulator not up in {start_timeout_s:.0f} s: "
                f"{log.read_text(errors='replace')}"
            )
        yield endpoint
    finally:
        stop(process, timeout_s=10)
