"""The image tools ``make image`` and ``make push`` drive (scripts/image.py), behind one
protocol: buildah, which builds into its store and pushes from it, and docker with buildx.

A build is described once (``Build``: tags, OCI manifest annotations, a Dockerfile or an image
to republish); each tool turns it into its own command line, and reports what it left
(``Built``) and the digests it pushed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "linux/amd64"


class ImageError(Exception):
    """What went wrong, and what to do."""


@dataclass(frozen=True)
class Build:
    """One image build."""

    tags: list[str]
    """Full references (``REGISTRY/APP/deployer:0.1.0``)."""
    annotations: dict[str, str]
    """OCI manifest annotations."""
    dockerfile: Path | None = None
    """The Dockerfile, or None for ``from_image``."""
    from_image: str = ""
    """Republish this image: a build ``FROM`` it that adds no layer."""
    context: Path = ROOT
    ignorefile: Path | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    network: bool = True
    """False: RUN steps get no network at all (``--network none``)."""


@dataclass(frozen=True)
class Built:
    """What a build left in the tool's store."""

    tags: list[str]
    image_id: str
    """The config's digest: the same in every registry the image is pushed to."""
    size: str
    """As the tool reports it (uncompressed)."""


class Tool(Protocol):
    @property
    def name(self) -> str: ...

    def build(self, build: Build) -> Built: ...

    def push(self, build: Build) -> dict[str, str]:
        """Push the build's tags; each pushed reference to its manifest digest."""
        ...


def _insecure(reference: str) -> bool:
    """A registry on this machine, spoken to over plain HTTP (as Docker does for
    127.0.0.0/8)."""
    host = reference.split("/", 1)[0]
    return host.split(":")[0] in ("localhost", "127.0.0.1")


def _run(command: Sequence[str], *, capture: bool = False) -> str:
    """Run a tool, its progress shown (or its output returned, with ``capture``)."""
    done = subprocess.run(
        list(command), stdout=subprocess.PIPE if capture else None, text=True, check=False
    )
    if done.returncode != 0:
        raise ImageError(f"{' '.join(command[:3])} ... failed (exit {done.returncode}): see above")
    return done.stdout or ""


def _containerfile(build: Build, workdir: Path) -> Path:
    if build.dockerfile is not None:
        return build.dockerfile
    # The label adds no layer; it is there because buildah (1.28) leaves the working container
    # of a build that is FROM and nothing else behind.
    path = workdir / "Containerfile"
    path.write_text(
        f"FROM {build.from_image}\nLABEL org.opencontainers.image.base.name={build.from_image}\n"
    )
    return path


@dataclass(frozen=True)
class Buildah:
    """buildah: builds into its store with cached layers, pushes from it."""

    global_args: tuple[str, ...] = ()
    """Options before the command (``--root``, ``--runroot``, ``--storage-driver``)."""
    pull: str = "missing"
    """When to pull the base images: ``missing``, ``always`` or ``never``."""
    name: str = "buildah"

    def _buildah(self, *args: str) -> list[str]:
        return ["buildah", *self.global_args, *args]

    def build(self, build: Build) -> Built:
        with tempfile.TemporaryDirectory() as tmp:
            context = build.context if build.dockerfile is not None else Path(tmp)
            command = self._buildah(
                "bud",
                "--layers",
                f"--pull={self.pull}",
                f"--platform={PLATFORM}",
                "--format=oci",
                *(["--network=none"] if not build.network else []),
                *(["--ignorefile", str(build.ignorefile)] if build.ignorefile else []),
                "--file",
                str(_containerfile(build, Path(tmp))),
                *[f"--annotation={k}={v}" for k, v in build.annotations.items()],
                *[f"--build-arg={k}={v}" for k, v in build.build_args.items()],
                *[f"--tag={t}" for t in build.tags],
                str(context),
            )
            _run(command)
        return self.inspect(build.tags)

    def inspect(self, tags: list[str]) -> Built:
        """The image the first of ``tags`` names, as the store holds it."""
        listed = json.loads(_run(self._buildah("images", "--json", tags[0]), capture=True))
        shown = json.loads(_run(self._buildah("inspect", "--type=image", tags[0]), capture=True))
        return Built(tags=tags, image_id=f"sha256:{shown['FromImageID']}", size=listed[0]["size"])

    def push(self, build: Build) -> dict[str, str]:
        digests: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for tag in build.tags:
                digest_file = Path(tmp) / "digest"
                _run(
                    self._buildah(
                        "push",
                        "--format=oci",
                        *(["--tls-verify=false"] if _insecure(tag) else []),
                        f"--digestfile={digest_file}",
                        tag,
                        f"docker://{tag}",
                    )
                )
                digests[tag] = digest_file.read_text().strip()
        return digests


@dataclass(frozen=True)
class Docker:
    """docker with buildx. Its local image store keeps no manifest annotations, so ``build``
    loads the image without them and ``push`` builds again (from the cache) straight into
    the registry with them, as Google's own Marketplace builds do."""

    name: str = "docker"

    def _buildx(self, build: Build, workdir: Path, *output: str) -> list[str]:
        return [
            "docker",
            "buildx",
            "build",
            f"--platform={PLATFORM}",
            *(["--network=none"] if not build.network else []),
            "--file",
            str(_containerfile(build, workdir)),
            *[f"--build-arg={k}={v}" for k, v in build.build_args.items()],
            *[f"--tag={t}" for t in build.tags],
            *output,
            str(build.context if build.dockerfile is not None else workdir),
        ]

    def build(self, build: Build) -> Built:
        with tempfile.TemporaryDirectory() as tmp:
            _run(self._buildx(build, Path(tmp), "--load"))
        shown = json.loads(_run(["docker", "image", "inspect", build.tags[0]], capture=True))[0]
        return Built(tags=build.tags, image_id=shown["Id"], size=f"{shown['Size'] / 1e6:.0f} MB")

    def push(self, build: Build) -> dict[str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            metadata = Path(tmp) / "metadata.json"
            annotations = [f"--annotation=manifest:{k}={v}" for k, v in build.annotations.items()]
            _run(
                self._buildx(
                    build, Path(tmp), *annotations, f"--metadata-file={metadata}", "--push"
                )
            )
            digest = str(json.loads(metadata.read_text())["containerimage.digest"])
        return dict.fromkeys(build.tags, digest)


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def pick_tool(name: str = "") -> Tool:
    """``docker`` or ``buildah`` as named, else docker when its daemon answers, else
    buildah."""
    if name == "docker" or (not name and docker_answers()):
        return Docker()
    if name in ("", "buildah") and shutil.which("buildah"):
        return Buildah()
    raise ImageError(
        "no Docker daemon answers and buildah is not installed: start Docker, or install "
        "buildah (`make debian-packages` on Debian)"
        if not name
        else f"unknown image tool {name!r}: use docker or buildah"
    )
