"""Third-party manifests the docs apply (``third-party.yaml``): each must be pinned to an
immutable ref, reviewed at that ref, and name images at or above their fixed releases.

The docs are scanned for what a user would apply: every ``https://`` URL of a YAML manifest, and
every ``helm install``/``upgrade`` of a chart that is not one of this repository's. A manifest
from a branch (``master``) can change under users without a change here; one from a commit or
a release asset cannot, and the images it names were read from it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from security.errors import RecordError

RECORD = Path(__file__).with_name("third-party.yaml")
SCANNED = (
    "README.md",
    "SECURITY.md",
    "docs/**/*.md",
    "samples/**/README.md",
    "locust/README.md",
    "chart/templates/NOTES.txt",
    "locust/chart/templates/NOTES.txt",
    "tests/deployer/e2e.sh",
)
"""The files whose commands users run, relative to the repository root."""

_MANIFEST_URL = re.compile(r"https?://[^\s\"'`<>()]+?\.ya?ml\b")
_HELM_INSTALL = re.compile(r"\bhelm\s+(?:install|upgrade|repo\s+add)\b[^\n`]*")
_FOREIGN_CHART = re.compile(r"oci://|https?://|--repo\b|\brepo\s+add\b")
_RAW_GITHUB = re.compile(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/([^/]+)/")
_RELEASE_ASSET = re.compile(r"https://github\.com/[^/]+/[^/]+/releases/download/([^/]+)/")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"v?(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class PinnedImage:
    image: str
    minimum: str
    """The oldest acceptable version of the image's tag (its fixed release)."""
    because: str


@dataclass(frozen=True)
class Manifest:
    name: str
    url: str
    reviewed: datetime.date
    images: tuple[PinnedImage, ...]


@dataclass(frozen=True)
class Use:
    """A place in the docs that applies something from outside the repository."""

    file: str
    line: int
    text: str


def parse_record(raw: Any, *, source: str = "third-party.yaml") -> list[Manifest]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("manifests"), list):
        raise RecordError(f"{source}: expected a mapping with a manifests list")
    manifests = []
    for item in raw["manifests"]:
        try:
            manifests.append(
                Manifest(
                    name=item["name"],
                    url=item["url"],
                    reviewed=datetime.date.fromisoformat(str(item["reviewed"])),
                    images=tuple(
                        PinnedImage(i["image"], str(i["minimum"]), i["because"])
                        for i in item["images"]
                    ),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(
                f"{source}: each manifest needs name, url, reviewed (a date) and images, each "
                f"image with image, minimum and because ({exc!r})"
            ) from exc
    return manifests


def load_record(path: Path = RECORD) -> list[Manifest]:
    return parse_record(yaml.safe_load(path.read_text()), source=path.name)


def scanned_files(root: Path) -> list[Path]:
    return sorted({p for pattern in SCANNED for p in root.glob(pattern) if p.is_file()})


def uses(root: Path, files: Iterable[Path]) -> tuple[dict[str, list[Use]], list[Use]]:
    """Manifest URLs (each with where it is applied) and installs of foreign charts."""
    urls: dict[str, list[Use]] = {}
    charts: list[Use] = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            where = str(path.relative_to(root))
            for url in _MANIFEST_URL.findall(line):
                urls.setdefault(url, []).append(Use(where, number, line.strip()))
            for command in _HELM_INSTALL.findall(line):
                if _FOREIGN_CHART.search(command):
                    charts.append(Use(where, number, command.strip()))
    return urls, charts


def pinned_ref(url: str) -> str | None:
    """The immutable ref a URL names: a full commit of raw.githubusercontent.com, or the tag of
    a GitHub release asset; None for a branch or anything else."""
    if matched := _RAW_GITHUB.match(url):
        return matched.group(1) if _COMMIT.fullmatch(matched.group(1)) else None
    if matched := _RELEASE_ASSET.match(url):
        return matched.group(1)
    return None


def version(tag: str) -> tuple[int, ...]:
    matched = _VERSION.search(tag)
    if matched is None:
        raise RecordError(f"{tag!r} carries no dotted version to compare")
    return tuple(int(part) for part in matched.group(1).split("."))


def problems(root: Path, manifests: list[Manifest]) -> list[str]:
    """Everything that breaks the rule, each with what to do; empty when the docs keep it."""
    found: list[str] = []
    urls, charts = uses(root, scanned_files(root))
    recorded = {m.url: m for m in manifests}
    for url, places in sorted(urls.items()):
        if url not in recorded:
            where = ", ".join(f"{u.file}:{u.line}" for u in places)
            found.append(
                f"{where} applies {url}, which security/third-party.yaml does not list: pin it "
                "to a commit or release tag, read the images it names at that ref, and record it"
            )
    for manifest in manifests:
        if pinned_ref(manifest.url) is None:
            found.append(
                f"{manifest.name}: {manifest.url} is not pinned (a branch can change under "
                "users): use a full commit or a release asset URL"
            )
        if manifest.url not in urls:
            found.append(
                f"{manifest.name}: recorded in security/third-party.yaml but applied nowhere in "
                "the docs: remove it from the record, or fix the docs' URL to match"
            )
        for pinned in manifest.images:
            tag = pinned.image.rpartition(":")[2]
            if version(tag) < version(pinned.minimum):
                found.append(
                    f"{manifest.name}: its manifest names {pinned.image}, older than "
                    f"{pinned.minimum} ({pinned.because.strip()}): pin a ref whose manifest "
                    "names a fixed image"
                )
    for use in charts:
        found.append(
            f"{use.file}:{use.line}: `{use.text}` installs a chart from outside this "
            "repository, which the audit cannot review (it reads pinned manifests): apply a "
            "pinned manifest instead, or teach security/manifests.py to review the chart's "
            "version and images"
        )
    return found
