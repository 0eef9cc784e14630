"""Locust's distributed mode on loopback: one master bound to 127.0.0.1 and N worker processes,
as the load-test chart (``locust/chart``) runs them on a cluster. ``make bench`` measures the
workers with it, and the tests run the locustfile through it.

Every process writes its output to a file of its own (``master.log``, ``worker-N.log``), so a
long run cannot fill a pipe and stall; every wait is bounded, and leaving the ``with`` block
kills what is still running, by PID.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from common.loopback import LOOPBACK, free_port
from common.processes import Service

EXPECT_WORKERS_S: Final = 30
"""How long the master waits for its workers before it gives up."""

# `python -c` with Locust's own entry point, so modules can be hidden from the locustfile first
# (the chart runs it in Locust's image, which has neither numpy nor tritonclient).
_LAUNCH: Final = (
    "import sys\n"
    "sys.modules.update(dict.fromkeys(sys.argv[1].split(',')) if sys.argv[1] else {})\n"
    "del sys.argv[1]\n"
    "sys.argv[0] = 'locust'\n"
    "from locust.main import main\n"
    "main()\n"
)


@dataclass(frozen=True)
class ClusterRun:
    """What a finished distributed run left behind."""

    returncode: int
    """The master's exit code (1 when any request failed)."""
    master_output: str
    worker_outputs: list[str]
    worker_returncodes: list[int | None]
    """None for a worker that was killed and reaped by the caller's kill."""
    stats: list[dict[str, Any]] = field(default_factory=list)
    """The master's ``--json-file`` entries (empty if it wrote none)."""


class LocalLocustCluster(Service):
    """A master and ``workers`` worker processes running ``locustfile`` against ``host``.

    ``master_args`` are the run's own options (``--headless``, ``-t``, the locustfile's); the
    master is bound to 127.0.0.1 on a free port and writes ``<out>/stats.json``.
    ``hidden_modules`` are made unimportable in every process; ``worker_preexec`` runs in each
    worker before it starts (to pin it to a core, say).
    """

    def __init__(
        self,
        *,
        locustfile: Path,
        host: str,
        workers: int,
        out: Path,
        master_args: Sequence[str] = (),
        hidden_modules: Sequence[str] = (),
        cwd: Path | None = None,
        worker_preexec: Callable[[], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a distributed run needs at least one worker, got {workers}")
        self.locustfile = locustfile
        self.host = host
        self.workers = workers
        self.out = out
        self.master_args = list(master_args)
        self.hidden_modules = ",".join(hidden_modules)
        self.cwd = cwd
        self.worker_preexec = worker_preexec
        self.port = 0
        self.master: subprocess.Popen[bytes] | None = None
        self.worker_processes: list[subprocess.Popen[bytes]] = []

    @property
    def stats_prefix(self) -> Path:
        return self.out / "stats"

    def _launch(
        self, name: str, args: Sequence[str], preexec: Callable[[], None] | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.out / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, self.hidden_modules, *args],
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )

    def start(self) -> None:
        """Start the master, then the workers (they retry until the master listens)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.master = self._launch(
            "master",
            [
                "-f", str(self.locustfile), "--master",
                "--master-bind-host", LOOPBACK, "--master-bind-port", str(self.port),
                "--expect-workers", str(self.workers),
                "--expect-workers-max-wait", str(EXPECT_WORKERS_S),
                "-H", self.host, "--json-file", str(self.stats_prefix),
                *self.master_args,
            ],
        )  # fmt: skip
        for index in range(1, self.workers + 1):
            worker = self._launch(
                f"worker-{index}",
                [
                    "-f", str(self.locustfile), "--worker",
                    "--master-host", LOOPBACK, "--master-port", str(self.port),
                ],
                self.worker_preexec,
            )  # fmt: skip
            self.worker_processes.append(worker)

    def kill_worker(self, index: int) -> None:
        """Kill worker ``index`` (0-based) at once, as a lost node would."""
        self.worker_processes[index].send_signal(signal.SIGKILL)

    def wait(self, timeout_s: float) -> ClusterRun:
        """Wait for the master (at most ``timeout_s``), then for the workers it let go."""
        assert self.master is not None, "start() first"
        try:
            returncode = self.master.wait(timeout=timeout_s)
            worker_codes = [w.wait(timeout=15) for w in self.worker_processes]
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(
                f"the distributed run did not end within {timeout_s:.0f} s; "
                f"master's output:\n{self.log('master')[-3000:]}"
            ) from None
        stats_file = self.stats_prefix.with_name(self.stats_prefix.name + ".json")
        return ClusterRun(
            returncode=returncode,
            master_output=self.log("master"),
            worker_outputs=[self.log(f"worker-{i}") for i in range(1, self.workers + 1)],
            worker_returncodes=[None if code < 0 else code for code in worker_codes],
            stats=json.loads(stats_file.read_text()) if stats_file.exists() else [],
        )

    def log(self, name: str) -> str:
        path = self.out / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Kill whatever this cluster started that still runs, and reap it."""
        for process in [*self.worker_processes, *([self.master] if self.master else [])]:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
