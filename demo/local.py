"""Run the Triton server that the chart describes on this machine, with no cluster and no GPU.

The server is the ``tritonserver`` 2.51 binary bundled in the ``nvidia-pytriton`` wheel, which
has only the python backend (demo/triton_install.py finds it). The container arguments come from
the rendered chart, so the local demo and a cluster share one source of truth; only what cannot
apply here (ports, addresses, the repository path, GPU metrics) is replaced.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.loopback import LOOPBACK, answers, free_ports
from common.processes import ExitedError, Service, start_logged, wait_serving
from common.processes import stop as stop_process
from demo.errors import LocalTritonError
from demo.triton_install import TritonInstall, find_install, server_environment, stage_backends

TRITONSERVER = "tritonserver"
"""The server's name in the chart's container command."""
SHARED_MEMORY = Path("/dev/shm")
"""Where the python backend keeps the memory each stub shares with the server."""

_LOG = logging.getLogger(__name__)

# Flags whose local value is ours to choose; the chart's value for them is dropped.
_LOCAL_FLAGS = (
    "--model-repository",
    "--http-port",
    "--grpc-port",
    "--metrics-port",
    "--http-address",
    "--grpc-address",
    "--metrics-address",
    "--allow-gpu-metrics",
    "--backend-directory",
    "--cache-directory",
)


@dataclass(frozen=True)
class Ports:
    """The three ports one server listens on."""

    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls, host: str = LOOPBACK) -> Ports:
        """Three ports that are free on ``host`` right now."""
        http, grpc, metrics = free_ports(3, host)
        return cls(http=http, grpc=grpc, metrics=metrics)


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


_HELP_FLAG = re.compile(r"^\s+(--[a-z0-9][a-z0-9-]*)", re.MULTILINE)


@functools.cache
def known_flags(install: TritonInstall) -> frozenset[str]:
    """Every ``--flag`` this ``tritonserver`` lists in its ``--help`` (it prints them and exits
    with 1), so flags of a newer Triton can be told apart from this one's."""
    try:
        result = subprocess.run(
            [str(install.binary), "--help"],
            capture_output=True,
            env=server_environment(install, os.environ),
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalTritonError(f"{install.binary} --help did not answer within 30 s") from exc
    flags = frozenset(_HELP_FLAG.findall((result.stdout + result.stderr).decode(errors="replace")))
    if "--model-repository" not in flags:
        raise LocalTritonError(
            f"{install.binary} --help lists no --model-repository: is it a tritonserver? "
            "Reinstall nvidia-pytriton with `make venv`"
        )
    return flags


def unknown_flags(chart_args: Sequence[str], known: Collection[str]) -> list[str]:
    """The chart's arguments whose flag this Triton does not know (a newer release's, such as
    ``--http-max-input-size`` of Triton 2.59): started with them, it would refuse to run."""
    return [a for a in chart_args if a.startswith("--") and _flag_name(a) not in known]


def local_arguments(
    chart_args: Sequence[str],
    *,
    model_repository: str,
    ports: Ports,
    host: str = "127.0.0.1",
    known: Collection[str] | None = None,
) -> list[str]:
    """Turn the container's ``tritonserver`` arguments into ones for this machine.

    Every flag the chart chose is kept (control mode, restricted APIs, metrics config ...)
    except those in ``_LOCAL_FLAGS``, which name paths, ports and GPU features of the pod, and,
    given the flags this Triton ``known``s, those it lacks (``unknown_flags``).
    Flags must be written ``--name=value``, as the chart writes them.
    """
    lacking = set(unknown_flags(chart_args, known)) if known is not None else set()
    kept = [a for a in chart_args if _flag_name(a) not in _LOCAL_FLAGS and a not in lacking]
    return [
        f"--model-repository={model_repository}",
        f"--http-address={host}",
        f"--grpc-address={host}",
        f"--metrics-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--allow-gpu-metrics=false",
        *kept,
    ]


# `$(NAME)` references in container args, and `$$` which escapes a literal `$`.
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_references(arg: str, env: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` in a container argument the way the kubelet does: a defined
    variable is replaced, an undefined one is left as written, ``$$`` becomes ``$``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, arg)


def _secret_values(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    values: dict[tuple[str, str], str] = {}
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        name = obj["metadata"]["name"]
        for key, encoded in (obj.get("data") or {}).items():
            values[(name, key)] = base64.b64decode(encoded).decode()
        for key, plain in (obj.get("stringData") or {}).items():
            values[(name, key)] = str(plain)
    return values


@dataclass(frozen=True)
class ContainerLaunch:
    """What the kubelet would start for the Triton container: its arguments with ``$(VAR)``
    references expanded, and the environment they were expanded from."""

    args: list[str]
    """``tritonserver`` arguments as the process sees them (Secret values included)."""
    written_args: list[str]
    """The arguments as the chart writes them, references unexpanded: safe to print."""
    env: dict[str, str]
    """The container's environment variables (literal values and rendered Secret keys)."""
    command: list[str] = field(default_factory=lambda: [TRITONSERVER])
    """The container's command as the chart writes it: ``tritonserver``, or with
    ``gpu.mps.enabled`` the chart's MPS launcher (a shell line that starts the MPS control
    daemon, then ``exec tritonserver "$@"``)."""


def triton_container_launch(
    objects: Sequence[Mapping[str, Any]], *, container: str = "triton"
) -> ContainerLaunch:
    """The Triton container of the rendered chart's Deployment, resolved like the kubelet:
    ``value`` and ``valueFrom.secretKeyRef`` (from Secrets in the same rendering) become the
    environment, then ``$(VAR)`` in the arguments is expanded from it. Other ``valueFrom``
    sources (field and resource references) do not exist off-cluster and are left out."""
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise LocalTritonError(
            f"the rendered chart has {len(deployments)} Deployments, expected one Triton Deployment"
        )
    containers = deployments[0]["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c.get("name") == container]
    if not found:
        names = [c.get("name") for c in containers]
        raise LocalTritonError(f"the Deployment has no container {container!r} (it has {names})")
    secrets = _secret_values(objects)
    env: dict[str, str] = {}
    for entry in found[0].get("env") or []:
        if "value" in entry:
            env[entry["name"]] = expand_references(str(entry["value"]), env)
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            continue
        key = (ref["name"], ref["key"])
        if key not in secrets:
            raise LocalTritonError(
                f"env {entry['name']} reads Secret {ref['name']} key {ref['key']}, which the "
                "rendering does not hold: render with the values that create it"
            )
        env[entry["name"]] = secrets[key]
    written = [str(a) for a in found[0].get("args") or []]
    return ContainerLaunch(
        args=[expand_references(a, env) for a in written],
        written_args=written,
        env=env,
        command=[str(part) for part in found[0].get("command") or [TRITONSERVER]],
    )


PYTHON_BACKEND_LOCK_ABORT = "boost::interprocess::lock_exception"
STARVED_START = re.compile(
    rf"{re.escape(PYTHON_BACKEND_LOCK_ABORT)}|Stub process '.+' is not healthy"
)
"""How Triton 2.51's python backend fails while stubs start on a machine whose cores are all busy:
a lock in the memory it shares with a stub gives way and it aborts the server (exit code -6;
triton-inference-server/server#8882 reports it under load), or a stub misses its health check in
the model's warm-up and the model fails to load (exit code 1). A start that ends so is made once
more."""


@dataclass
class LocalTriton(Service):
    """A ``tritonserver`` process on loopback, started and stopped as a context manager.

    Waits are always bounded: a stub that cannot start, or a ``gs://`` repository with no
    reachable endpoint, makes Triton hang rather than exit.
    """

    model_repository: str
    """A folder, or ``gs://bucket/prefix`` with ``CLOUD_STORAGE_EMULATOR_ENDPOINT`` in ``env``."""
    workdir: Path
    """Where backends are staged and the log is written."""
    chart_args: Sequence[str] = ()
    """The Triton container's arguments from the rendered chart."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the server."""
    container_command: Sequence[str] = (TRITONSERVER,)
    """The container's command (``ContainerLaunch.command``), run with the arguments after
    it; ``tritonserver`` in it is the bundled server."""
    ready_timeout_s: float = 120.0
    """How long to wait for ``/v2/health/ready``."""
    host: str = LOOPBACK
    ports: Ports = field(default_factory=Ports.free)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    shared_memory_prefix: str = field(
        default_factory=lambda: f"triton-local-{uuid.uuid4().hex[:12]}_", init=False, repr=False
    )
    """This server's prefix for its stubs' shared memory regions: a server that is killed, or
    aborts, leaves them in /dev/shm (a megabyte or more a stub), and ``stop`` removes them."""

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports.metrics}/metrics"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (started and not stopped), else None."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def command(self, install: TritonInstall) -> list[str]:
        staged = stage_backends(install, self.workdir)
        args = local_arguments(
            self.chart_args,
            model_repository=self.model_repository,
            ports=self.ports,
            host=self.host,
            known=known_flags(install),
        )
        program = [str(install.binary) if p == TRITONSERVER else p for p in self.container_command]
        return [
            *program,
            *args,
            f"--backend-directory={staged / 'backends'}",
            f"--cache-directory={staged / 'caches'}",
            f"--backend-config=python,shm-region-prefix-name={self.shared_memory_prefix}",
        ]

    @property
    def aborted_log_path(self) -> Path:
        """The log of a start that failed as starved stubs do (``STARVED_START``)."""
        return self.workdir / "tritonserver.aborted.log"

    def start(self) -> None:
        try:
            self._start_once()
        except LocalTritonError:
            if not (starved := STARVED_START.search(self.log_text())):
                raise
            self.log_path.replace(self.aborted_log_path)
            _LOG.warning(
                "tritonserver failed while its python backend started the models (%s: a Triton "
                "2.51 failure on a machine whose cores are all busy); starting it again (the "
                "first log: %s)",
                starved.group(),
                self.aborted_log_path,
            )
            self._start_once()

    def _start_once(self) -> None:
        install = find_install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = self.command(install)
        env = server_environment(install, {**os.environ, **self.env})
        note = ""
        if left_out := unknown_flags(self.chart_args, known_flags(install)):
            note = (
                f"local runner: left out {' '.join(left_out)}: this tritonserver does not "
                "know them (a newer Triton's flags); the cluster's Triton gets them\n"
            )
            _LOG.warning(note.strip())
        self.log_path.write_text(note)
        # A session of its own, so stopping it also stops the python stub processes.
        self._process = start_logged(command, self.log_path, env=env, new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_ready(self) -> bool:
        return answers(f"{self.http_url}/v2/health/ready")

    def wait_ready(self) -> None:
        if self._process is None:
            raise LocalTritonError("tritonserver is not running: start() it first")
        try:
            if wait_serving(
                self._process, self.is_ready, timeout_s=self.ready_timeout_s, interval_s=0.2
            ):
                return
        except ExitedError as exc:
            raise LocalTritonError(
                f"tritonserver exited with code {exc.returncode} before it was ready; "
                f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
            ) from None
        raise LocalTritonError(
            f"tritonserver was not ready within {self.ready_timeout_s:.0f} s (a model that cannot "
            f"load, or a gs:// repository with no reachable endpoint, makes it hang); its log "
            f"({self.log_path}) ends with:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop the server: SIGTERM lets Triton drain in-flight requests and unload its models
        (a few seconds: the python backend stops its stubs one by one), SIGKILL if it lingers
        past ``timeout_s`` (0: at once). Returns the exit code, or None if it was not running."""
        process, self._process = self._process, None
        if process is None:
            return None
        stop_process(process, timeout_s=timeout_s, group=True)
        # Stubs share the session; make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for region in SHARED_MEMORY.glob(f"{self.shared_memory_prefix}*"):
            region.unlink(missing_ok=True)  # left by a kill or an abort; a clean exit removes them
        return process.returncode
