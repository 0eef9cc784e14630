"""A real Kubernetes control plane on loopback for the tests and benchmarks: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler from ``../shared/k8s``, started by its own
``control-plane.sh`` (the launcher that was checked against these binaries).

There is no kubelet: :mod:`standins.kube.kubelet` registers nodes and plays the pods' lives through
the API. The binaries are unpacked once into ``.tools/k8s-<version>`` and linked into each run's
folder, so a start costs seconds, not the unpacking.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from common.processes import brief_go_environment
from common.waiting import wait_until as _wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
K8S_DIR = ROOT.parent / "shared" / "k8s"
SHARED_CRDS_DIR = ROOT.parent / "shared" / "crds"
"""The custom resource definitions of Istio, the Gateway API, KEDA's and Marketplace's
Application, as their projects publish them."""
GKE_CRDS_DIR = Path(__file__).resolve().parent / "crds"
"""GKE's own resources the chart renders, transcribed (crds/README.md says from where)."""
LAUNCHER = K8S_DIR / "control-plane.sh"
VERSION = "v1.36.2"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
CACHE = ROOT / ".tools" / f"k8s-{VERSION}"
START_TIMEOUT_S = 180.0
HPA_SYNC_PERIOD_S = 1
"""How often the HPA controller evaluates every HorizontalPodAutoscaler (15 s by default): short
enough that the autoscaling tests see its decisions within seconds. Its cost is one metrics read
per HPA and period; HPAs of other tests that find no metrics only log an event."""
CONTROLLER_MANAGER_ARGS = (f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD_S}s",)
"""Flags every test control plane's kube-controller-manager gets (one control plane serves a
whole test run, so they are set once, here)."""


class ControlPlaneUnavailableError(Exception):
    """What this machine lacks to run the control plane (the message says what to install)."""


def missing_prerequisite() -> str | None:
    """Why the control plane cannot start here, or None when it can."""
    if not LAUNCHER.is_file():
        return (
            f"{K8S_DIR} is absent: the Kubernetes {VERSION} binaries are not here (elsewhere, "
            "put the upstream release binaries kube-apiserver, kube-controller-manager, "
            "kube-scheduler and kubectl there, xz-compressed, with its control-plane.sh)"
        )
    if shutil.which("etcd") is None:
        return "etcd is not on PATH: apt-get install -y etcd-server (make test does this)"
    return None


def _unpack_binaries() -> Path:
    """The four binaries, unpacked once into ``CACHE`` (each written to a temporary name and
    renamed, so an interrupted unpack never leaves a truncated binary behind). Test tiers run
    side by side start their control planes at once: a lock on the cache makes the second
    wait for the first's unpack instead of writing the same file."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in BINARIES:
            target = CACHE / name
            if target.is_file() and os.access(target, os.X_OK):
                continue
            partial = target.with_suffix(".partial")
            with partial.open("wb") as out:
                subprocess.run(["xz", "-dc", str(K8S_DIR / f"{name}.xz")], stdout=out, check=True)
            partial.chmod(0o755)
            partial.replace(target)
    return CACHE


def _pids(workdir: Path) -> list[int]:
    path = workdir / "pids"
    if not path.is_file():
        return []
    return [int(line) for line in path.read_text().split() if line.strip()]


@dataclass
class ControlPlane:
    """A running control plane. ``stop`` ends exactly the processes ``start`` began."""

    workdir: Path
    """Logs (``apiserver.log`` and the others), certificates, the admin kubeconfig."""
    kubeconfig: Path
    """Admin kubeconfig (a static token in ``system:masters``)."""
    server: str
    """The API server's URL (https on 127.0.0.1)."""
    kubectl: Path
    """The kubectl binary of the same version."""
    pids: list[int] = field(default_factory=list)
    """Every process the launcher started, etcd first."""

    @classmethod
    def start(cls, workdir: Path) -> ControlPlane:
        """Start etcd, the API server, the controller manager and the scheduler; return once the
        API server is ready. Raises ``ControlPlaneUnavailableError`` when a prerequisite is missing,
        ``RuntimeError`` (with the API server's log) when it does not come up."""
        reason = missing_prerequisite()
        if reason:
            raise ControlPlaneUnavailableError(reason)
        binaries = _unpack_binaries()
        (workdir / "bin").mkdir(parents=True, exist_ok=True)
        for name in BINARIES:
            link = workdir / "bin" / name
            if not link.exists():
                link.symlink_to(binaries / name)
        env = {**os.environ, "KUBE_CONTROLLER_MANAGER_ARGS": " ".join(CONTROLLER_MANAGER_ARGS)}
        try:
            subprocess.run(
                ["bash", str(LAUNCHER), "start", str(workdir)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            _stop(workdir)
            log = workdir / "apiserver.log"
            tail = log.read_text()[-3000:] if log.is_file() else ""
            stderr = exc.stderr if isinstance(exc.stderr, str) else ""
            raise RuntimeError(f"the control plane did not start: {stderr}\n{tail}") from exc
        kubeconfig = workdir / "kubeconfig"
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        plane = cls(
            workdir=workdir,
            kubeconfig=kubeconfig,
            server=server,
            kubectl=workdir / "bin" / "kubectl",
            pids=_pids(workdir),
        )
        plane._wait_for_default_service_account()
        return plane

    @property
    def controller_manager_log(self) -> Path:
        """kube-controller-manager's log (klog text: the HPA controller logs each rescale)."""
        return self.workdir / "controller-manager.log"

    def stop(self) -> None:
        """End the processes the launcher started (by the PIDs it recorded)."""
        _stop(self.workdir)

    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        """A Kubernetes client for the admin kubeconfig, or for ``kubeconfig``."""
        api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig)
        )
        return api_client

    def run_kubectl(
        self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with the admin kubeconfig (or ``kubeconfig``); raises with its stderr on
        failure."""
        result = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=brief_go_environment(),
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply_files(self, paths: Iterable[Path]) -> None:
        """Server-side apply of YAML files (CRDs and the like) as admin, in one kubectl run."""
        files = [argument for path in paths for argument in ("-f", str(path))]
        if files:
            self.run_kubectl("apply", "--server-side", "--force-conflicts", *files)

    def wait_for_crds(self, timeout_s: float = 60.0) -> None:
        """Until every CustomResourceDefinition is Established (served by the API server)."""
        self.run_kubectl(
            "wait", "--for=condition=Established", "crd", "--all", f"--timeout={timeout_s}s"
        )

    def kubeconfig_for(self, namespace: str, service_account: str, *, hours: int = 2) -> Path:
        """A kubeconfig whose user is ``service_account`` in ``namespace``, holding a real token
        from the TokenRequest API (so RBAC sees exactly that account)."""
        api: Any = client.CoreV1Api(self.api_client())
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=["https://kubernetes.default.svc"], expiration_seconds=hours * 3600
            )
        )
        token = api.create_namespaced_service_account_token(
            service_account, namespace, request
        ).status.token
        admin = yaml.safe_load(self.kubeconfig.read_text())
        user = f"system:serviceaccount:{namespace}:{service_account}"
        admin["users"] = [{"name": user, "user": {"token": token}}]
        admin["contexts"] = [
            {"name": "sa", "context": {"cluster": "local", "user": user, "namespace": namespace}}
        ]
        admin["current-context"] = "sa"
        path = self.workdir / f"kubeconfig-{namespace}-{service_account}"
        path.write_text(yaml.safe_dump(admin))
        return path

    def _wait_for_default_service_account(self, timeout_s: float = 60.0) -> None:
        """The controllers are up once the ServiceAccount controller has made ``default`` in
        ``default``: pods and tokens need it."""
        api = client.CoreV1Api(self.api_client())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(client.ApiException):
                api.read_namespaced_service_account("default", "default")
                return
            time.sleep(0.25)
        raise RuntimeError(f"no default ServiceAccount after {timeout_s} s: see {self.workdir}")


def _stop(workdir: Path) -> None:
    if _pids(workdir):
        subprocess.run(["bash", str(LAUNCHER), "stop", str(workdir)], check=False, timeout=60)


@contextlib.contextmanager
def running_control_plane(workdir: Path) -> Iterator[ControlPlane]:
    """A control plane for the length of the ``with`` block, stopped however it ends."""
    plane = ControlPlane.start(workdir)
    try:
        yield plane
    finally:
        plane.stop()


def crd_files() -> list[Path]:
    """Every custom resource definition the chart's objects need (``SHARED_CRDS_DIR``, then
    ``GKE_CRDS_DIR``)."""
    return sorted(SHARED_CRDS_DIR.glob("*.yaml")) + sorted(GKE_CRDS_DIR.glob("*.yaml"))


@contextlib.contextmanager
def running_control_plane_with_crds(workdir: Path) -> Iterator[ControlPlane]:
    """:func:`running_control_plane` with every CRD of :func:`crd_files` installed and served."""
    with running_control_plane(workdir) as plane:
        plane.apply_files(crd_files())
        plane.wait_for_crds()
        yield plane


POLL_S = 0.25
"""How often :func:`wait_until` asks the API server again: a quarter second is quick next to
what the tests wait for (a pod's start, a controller's sync), and four waiting tests on a
control plane cost it 16 requests a second, not 40."""


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Poll ``check()`` (every ``POLL_S``) until it returns something true, and return that; raise
    ``TimeoutError`` naming ``what`` (a test's failure) when ``timeout_s`` passes first."""
    seen: list[Any] = [None]

    def holds() -> bool:
        seen[0] = check()
        return bool(seen[0])

    if not _wait_until(holds, timeout_s=timeout_s, interval_s=POLL_S):
        raise TimeoutError(f"not within {timeout_s} s: {what}")
    return seen[0]
