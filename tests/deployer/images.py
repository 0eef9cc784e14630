"""The image tests' tools: a container store of their own, the stand-ins for images that cannot
be pulled here, and a registry on loopback.

Registry base images (Docker Hub, nvcr.io) cannot be pulled on this project's test machines,
so the tests build ``FROM`` stand-ins, kept in a store apart from the user's (under
``~/.cache/triton-gke-deployer/containers``, or ``$XDG_CACHE_HOME``), so that a stand-in never
takes the place of a real image in ``make image``:

- the base (Dockerfile.deployer's ``PYTHON_IMAGE``, ``python:3.11.x-slim-bookworm``): Debian
  bookworm minbase with python3, python3-venv and ca-certificates, made with debootstrap from
  this machine's Debian mirror, ``/usr/local/bin/python`` linked to ``/usr/bin/python3`` as in
  the real one, imported under that name;
- Triton and the tester, which ``make push`` republishes from the chart's default images: the
  real node's own images (tests/kube/node_images.py), tagged with those names. Triton is the
  node's Triton 2.51 behind a launcher (tests/deployer/tritonserver_launcher.py) that drops the
  flags the chart renders for its newer default release and 2.51 predates; the tester is the
  node's curl image.

The store is per machine and kept between runs: the base is made once (about a minute and a
half), and later builds reuse their cached layers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.image import DOCKERFILE, Listing
from scripts.image_tools import Build, Buildah

HERE = Path(__file__).resolve().parent
TOOLS = ("buildah", "podman", "skopeo", "debootstrap", "docker-registry")
REGISTRY_HOST = "localhost"
"""The images' registry name: Google's provision.py cuts an image name at its first ``:``, so
the registry listens on port 80 and its name carries no port."""
REGISTRY_PORT = 80


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "triton-gke-deployer"


def missing_image_prerequisite() -> str | None:
    """Why the image tests cannot run here, or None."""
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        return f"{', '.join(missing)} missing: make debian-packages (Debian) installs them"
    if os.geteuid() != 0:
        return "the image tests build with buildah as root (its rootless setup is not covered)"
    return None


def image_store() -> Buildah:
    """buildah on the tests' own store, never pulling."""
    root = cache_dir() / "containers"
    run_root = Path(tempfile.gettempdir()) / f"triton-gke-deployer-containers-{os.geteuid()}"
    return Buildah(global_args=("--root", str(root), "--runroot", str(run_root)), pull="never")


def podman(store: Buildah, *args: str) -> list[str]:
    """podman on the same store, with what runs containers on this machine: runc (crun
    refuses hybrid cgroups), cgroupfs, the host's network, limits under the host's."""
    return ["podman", *store.global_args, *args]


PODMAN_RUN = (
    "run",
    "--rm",
    "--runtime=runc",
    "--cgroup-manager=cgroupfs",
    "--network=host",
    "--ulimit=nofile=1024:20000",
    "--ulimit=nproc=4096:4096",
)


def _has_image(store: Buildah, name: str) -> bool:
    done = subprocess.run(
        ["buildah", *store.global_args, "inspect", "--type=image", name],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def base_image() -> str:
    """Dockerfile.deployer's base, fully qualified as the store names it."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "Dockerfile.deployer declares ARG PYTHON_IMAGE=<its base>"
    name = match[1]
    return name if "/" in name else f"docker.io/library/{name}"


def _debian_mirror() -> str:
    """The first Debian mirror apt uses here."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.is_file():
            found = re.search(r"(?:URIs:|^deb)\s+(\S+/debian)\s", path.read_text(), re.MULTILINE)
            if found:
                return found[1]
    return "http://deb.debian.org/debian"


def ensure_base(store: Buildah) -> str:
    """The stand-in base in the store, made (once per machine) when missing; its name."""
    name = base_image()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "base.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be making it
        if _has_image(store, name):
            return name
        print(f"making the stand-in for {name} with debootstrap (once per machine)", flush=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    _debian_mirror(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for cached in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / cached).glob("*"):
                    if path.is_file():
                        path.unlink()
            (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                podman(store, "import", "-", name),
                stdin=tar.stdout,
                check=True,
                capture_output=True,
            )
            assert tar.wait() == 0
    return name


LAUNCHER_DIR = "/usr/local/lib/tritonserver-launcher"
"""Where the republished Triton's launcher lies, first on its PATH."""


def listing_triton_build(listing: Listing, node_triton: str, context: Path) -> Build:
    """The Triton the listing republishes (the chart's default image), made from the node's
    Triton (``node_triton``, a store reference) and the launcher, under the default's name."""
    shutil.copy(HERE / "tritonserver_launcher.py", context / "tritonserver")
    (context / "Containerfile").write_text(
        f"FROM {node_triton}\n"
        f"COPY --chmod=755 tritonserver {LAUNCHER_DIR}/tritonserver\n"
        f"ENV PATH={LAUNCHER_DIR}:$PATH\n"
    )
    return Build(
        tags=[listing.sources[""]],
        annotations={},
        dockerfile=context / "Containerfile",
        context=context,
    )


@dataclass(frozen=True)
class LocalRegistry:
    """Debian's docker-registry (CNCF distribution) on 127.0.0.1:80."""

    host: str
    """What images are named under (``localhost``)."""
    pid: int
    root: Path

    def manifest(self, reference: str) -> dict[str, object]:
        """A pushed image's manifest as the registry holds it (``skopeo inspect --raw``)."""
        done = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
            capture_output=True,
            text=True,
            check=True,
        )
        manifest: dict[str, object] = json.loads(done.stdout)
        return manifest


def registry_port_taken() -> str | None:
    """Why the registry cannot listen on 127.0.0.1:80, or None."""
    with socket.socket() as probe:
        # As the registry will bind (Go sets SO_REUSEADDR): connections of a registry that
        # just stopped, in TIME_WAIT, do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", REGISTRY_PORT))
        except OSError as exc:
            return f"127.0.0.1:{REGISTRY_PORT} is taken ({exc.strerror}): another registry runs"
    return None


@contextlib.contextmanager
def running_registry(workdir: Path) -> Iterator[LocalRegistry]:
    """A registry for the length of the block, stopped by its PID however it ends."""
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{REGISTRY_PORT}'}}\n"
        "log: {level: warn}\n"
    )
    with (workdir / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{REGISTRY_PORT}/v2/", timeout=2),
            ):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the registry did not start: {(workdir / 'registry.log').read_text()}"
                )
            time.sleep(0.2)
        yield LocalRegistry(host=REGISTRY_HOST, pid=process.pid, root=workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
