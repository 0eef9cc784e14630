"""A real ``gcp-storage-emulator`` on loopback, in memory, for benchmarks and tests that load a
``gs://`` repository without Google Cloud: Triton reaches it through
``CLOUD_STORAGE_EMULATOR_ENDPOINT``, ``google-cloud-storage`` through ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from common.loopback import LOOPBACK, free_port
from common.processes import stop
from common.waiting import wait_until


class EmulatorError(RuntimeError):
    """The emulator exited or did not answer in time; the message carries its log."""


@contextlib.contextmanager
def running_emulator(
    log: Path, *, host: str = LOOPBACK, start_timeout_s: float = 30.0
) -> Iterator[str]:
    """Start the emulator on ``host`` (loopback, or an address of this machine that pods reach,
    such as a test node's), yield its ``http://HOST:PORT`` once it answers, stop it (by the PID
    started here) on the way out, whatever happened."""
    port = free_port(host)
    endpoint = f"http://{host}:{port}"
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [str(executable), "start", "--host", host, "--port", str(port), "--in-memory"],
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
