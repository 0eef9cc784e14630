"""The images the real node runs, built here, since no registry image can be pulled:

- ``tritonserver``: Triton 2.51 (NGC 24.10) for CPU nodes, the ``tritonserver`` and python
  backend of ``nvidia-pytriton`` (the wheel the project pins), laid out as NGC's images lay it
  out (``/opt/tritonserver/{bin,lib,backends,caches}``, ``tritonserver`` on the PATH), on the
  Debian base of tests/deployer/images.py with Debian's libpython (the backend's stub embeds
  it) and a Python holding what the BERT sample's python variant imports: torch (the CPU build
  of the project's pin; its C++ headers and test programs left out) and numpy < 2 (the stub's
  ABI). User ``triton-server``, uid 1000, as in NGC's images and the chart's security context.
- ``curl``: the base with Debian's curl, for the chart's ``helm test`` pod (whose default image
  is curlimages/curl).
- ``locust``: the base with Locust (the project's pin) as Locust's own image has it (``locust``
  on the PATH, user 1000, home ``/home/locust``), for the load-test chart's pods.

Each is built once per machine into the tests' container store (tests/deployer/images.py,
``~/.cache/triton-gke-deployer/containers``), tagged with a digest of everything it is built
from (its Containerfile, the pins, the base image), so that a changed input builds anew and an
unchanged one never rebuilds; then written once, compressed, into an OCI layout beside the
store (``~/.cache/triton-gke-deployer/oci/NAME``). Publishing to a session's registry copies
those compressed blobs (seconds) instead of compressing a gigabyte again. A machine keeps one
build of each image: a new build removes the one it replaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from demo.triton_install import find_install
from scripts.image_tools import Build, Buildah
from tests.deployer.images import base_image, cache_dir

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
STORE_REPOSITORY = "localhost/triton-gke-deployer-tests"
"""Where the store keeps the builds, each under its inputs' digest."""
TRITON_USER = 1000
"""NGC's ``triton-server`` user, which the chart's security context runs as."""


def requirement_pin(name: str) -> str:
    """The version requirements.txt pins ``name`` to."""
    found = re.search(rf"^{re.escape(name)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert found, f"requirements.txt pins no {name}"
    return found[1]


def base_python() -> str:
    """The base image's Python, ``X.Y`` (its name says it: ``python:3.11.x-slim-...``)."""
    found = re.search(r"python:(\d+\.\d+)", base_image())
    assert found, f"{base_image()} does not name its Python version"
    return found[1]


@dataclass(frozen=True)
class NodeImage:
    """An image of the node, and how to build it."""

    name: str
    containerfile: str
    """What the build runs, ``FROM`` the base (``{base}``), with the context of ``stage``."""
    inputs: tuple[str, ...]
    """What else decides its content: pins and versions of what ``stage`` puts in."""
    stage: Callable[[Path], None]
    """Puts the build context's files (beside the Containerfile) into a folder."""

    def key(self, base_id: str) -> str:
        text = "\n".join([self.containerfile, *self.inputs, base_id])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _download_wheels(folder: Path, *requirements: str) -> None:
    """The wheels of ``requirements`` and their dependencies, for the base's Python, at the
    versions constraints.txt holds, from this machine's pip configuration."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", f"--python-version={base_python()}",
            "-c", str(ROOT / "constraints.txt"), "--dest", str(folder), *requirements,
        ],
        check=True,
    )  # fmt: skip


def _stage_triton(context: Path) -> None:
    install = find_install()
    server = context / "tritonserver"
    shutil.copytree(install.binary.parent, server / "bin")
    shutil.copytree(
        install.backends, server / "backends", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(install.caches, server / "caches")
    stub = install.python_stub.parent.parent / base_python() / install.python_stub.name
    shutil.copy2(stub, server / "backends" / "python" / stub.name)
    # The wheel's bundled libraries, but the libpython it bundles for another Python's stub.
    shutil.copytree(install.libraries, server / "lib", ignore=shutil.ignore_patterns("libpython*"))
    _download_wheels(
        context / "wheels",
        f"torch=={requirement_pin('torch')}",
        f"numpy=={requirement_pin('numpy')}",
    )


TRITON = NodeImage(
    name="tritonserver",
    containerfile=f"""\
FROM {{base}}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends libpython{base_python()} \\
    && rm -rf /var/lib/apt/lists/* \\
    && useradd --uid {TRITON_USER} --user-group --create-home --shell /bin/bash triton-server
COPY tritonserver /opt/tritonserver
RUN --mount=type=bind,source=wheels,target=/wheels \\
    python3 -m venv /opt/python \\
    && /opt/python/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \\
        --find-links=/wheels --only-binary=:all: \\
        torch=={requirement_pin("torch")} numpy=={requirement_pin("numpy")} \\
    && /opt/python/bin/pip uninstall --yes --quiet pip \\
    && cd /opt/python/lib/python{base_python()}/site-packages/torch \\
    && rm -rf include test bin/test_* bin/*Test bin/protoc*
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV PATH=/opt/python/bin:/opt/tritonserver/bin:$PATH \\
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/opt/tritonserver/lib
WORKDIR /opt/tritonserver
USER {TRITON_USER}:{TRITON_USER}
""",
    inputs=(
        f"nvidia-pytriton=={importlib.metadata.version('nvidia-pytriton')}",
        f"torch=={requirement_pin('torch')}",
        f"numpy=={requirement_pin('numpy')}",
    ),
    stage=_stage_triton,
)

CURL = NodeImage(
    name="curl",
    containerfile="""\
FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends curl \\
    && rm -rf /var/lib/apt/lists/*
""",
    inputs=(),
    stage=lambda context: None,
)


def _stage_locust(context: Path) -> None:
    _download_wheels(context / "wheels", f"locust=={requirement_pin('locust')}")


LOCUST = NodeImage(
    name="locust",
    containerfile=f"""\
FROM {{base}}
RUN --mount=type=bind,source=wheels,target=/wheels \\
    python3 -m venv /opt/locust \\
    && /opt/locust/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \\
        --find-links=/wheels --only-binary=:all: locust=={requirement_pin("locust")} \\
    && /opt/locust/bin/pip uninstall --yes --quiet pip \\
    && useradd --uid 1000 --user-group --create-home --shell /bin/bash locust
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV PATH=/opt/locust/bin:$PATH
WORKDIR /home/locust
USER 1000:1000
ENTRYPOINT ["locust"]
""",
    inputs=(f"locust=={requirement_pin('locust')}",),
    stage=_stage_locust,
)


@dataclass(frozen=True)
class Cached:
    """A node image as this machine keeps it."""

    image: NodeImage
    reference: str
    """Its name in the store (``STORE_REPOSITORY/NAME:KEY``)."""
    layout: Path
    """The OCI layout holding it compressed, under the tag KEY."""
    build_s: float
    """What making it took in this session: 0 when it was there already."""

    @property
    def key(self) -> str:
        return self.reference.rpartition(":")[2]


def _buildah(store: Buildah, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *store.global_args, *args], capture_output=True, text=True, check=check
    )


def _image_id(store: Buildah, reference: str) -> str | None:
    done = _buildah(
        store, "inspect", "--type=image", "--format={{.FromImageID}}", reference, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _layout_holds(layout: Path, tag: str) -> bool:
    index = layout / "index.json"
    if not index.is_file():
        return False
    manifests = json.loads(index.read_text()).get("manifests", [])
    return any(
        m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag for m in manifests
    )


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One session at a time makes an image (another may be running the tests beside this)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _forget_older(store: Buildah, image: NodeImage, keep: str) -> None:
    """Remove the builds of ``image`` that ``keep`` replaces."""
    listed = _buildah(store, "images", "--json", f"{STORE_REPOSITORY}/{image.name}", check=False)
    for entry in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        for name in entry.get("names") or []:
            if name.startswith(f"{STORE_REPOSITORY}/{image.name}:") and name != keep:
                _buildah(store, "rmi", name, check=False)


def ensure(store: Buildah, image: NodeImage, *, report: Callable[[str], None] = print) -> Cached:
    """``image`` in the store and in its OCI layout, built (once per machine) when missing."""
    base = base_image()
    base_id = _image_id(store, base)
    assert base_id, f"the base {base} is not in the store: make it first (images.ensure_base)"
    key = image.key(base_id)
    reference = f"{STORE_REPOSITORY}/{image.name}:{key}"
    layout = cache_dir() / "oci" / image.name
    with _locked(f"node-image-{image.name}"):
        if _image_id(store, reference) and _layout_holds(layout, key):
            return Cached(image=image, reference=reference, layout=layout, build_s=0.0)
        report(f"building the node's {image.name} image (once per machine): {reference}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            context = Path(tmp)
            image.stage(context)
            (context / "Containerfile").write_text(image.containerfile.format(base=base))
            store.build(
                Build(
                    tags=[reference],
                    annotations={},
                    dockerfile=context / "Containerfile",
                    context=context,
                )
            )
        shutil.rmtree(layout, ignore_errors=True)
        layout.parent.mkdir(parents=True, exist_ok=True)
        _buildah(store, "push", "--quiet", "--format=oci", reference, f"oci:{layout}:{key}")
        _forget_older(store, image, reference)
        return Cached(
            image=image, reference=reference, layout=layout, build_s=time.monotonic() - started
        )


def publish(cached: Cached, reference: str) -> str:
    """Push ``cached`` to ``reference`` (a registry on this machine, plain HTTP) from its OCI
    layout; the manifest's digest."""
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp) / "digest"
        subprocess.run(
            [
                "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                f"--digestfile={digest_file}", f"oci:{cached.layout}:{cached.key}",
                f"docker://{reference}",
            ],
            check=True,
        )  # fmt: skip
        return digest_file.read_text().strip()


def tag(store: Buildah, cached: Cached, *names: str) -> None:
    """Give the store's build more names (the sources the listing republishes)."""
    _buildah(store, "tag", cached.reference, *names)


CHART_VALUES = ROOT / "chart" / "ci" / "70-local-cpu-image-values.yaml"
"""The chart's values for the node's images: the names Triton and curl are published under."""
LOCUST_CHART_VALUES = ROOT / "locust" / "chart" / "values.yaml"


def _reference(values: dict[str, str], registry: str | None = None) -> str:
    return f"{registry or values['registry']}/{values['repository']}:{values['tag']}"


@dataclass(frozen=True)
class NodeImages:
    """The node's images, made and published to a session's registry."""

    cached: dict[str, Cached]
    """Each image by name (``tritonserver``, ``curl``, ``locust``)."""
    published: dict[str, str]
    """Each image by name to the reference it was pushed to."""
    digests: dict[str, str]
    """Each pushed reference to its manifest's digest."""
    publish_s: float


def publish_all(store: Buildah, registry: str) -> NodeImages:
    """Make (once per machine) and push every node image: Triton and curl under the names
    ``CHART_VALUES`` gives them, Locust as the load-test chart's image under ``registry``."""
    chart = yaml.safe_load(CHART_VALUES.read_text())
    locust = yaml.safe_load(LOCUST_CHART_VALUES.read_text())["image"]
    wanted = {
        TRITON.name: (TRITON, _reference(chart["image"])),
        CURL.name: (CURL, _reference(chart["helmTest"]["image"])),
        LOCUST.name: (LOCUST, _reference(locust, registry)),
    }
    for _, reference in wanted.values():
        assert reference.startswith(f"{registry}/"), f"{reference} is not in {registry}"
    cached = {name: ensure(store, image) for name, (image, _) in wanted.items()}
    started = time.monotonic()
    digests = {ref: publish(cached[name], ref) for name, (_, ref) in wanted.items()}
    return NodeImages(
        cached=cached,
        published={name: ref for name, (_, ref) in wanted.items()},
        digests=digests,
        publish_s=time.monotonic() - started,
    )


def image_size(store: Buildah, reference: str) -> str:
    """The image's size as the store reports it (uncompressed)."""
    listed = json.loads(_buildah(store, "images", "--json", reference).stdout)
    return str(listed[0]["size"])
