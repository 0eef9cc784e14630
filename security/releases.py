"""NGC releases (``YY.MM``): Triton ships one a month (some months are skipped), and an image
tag names its release first (``26.10-py3``, ``26.10-py3-sdk``). Which Triton each release ships
is a table, ``chart/triton-releases.yaml``: no formula maps one onto the other."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from security.errors import ReleaseError

_RELEASE = re.compile(r"r?(\d{2})\.(\d{2})")
_TAG = re.compile(r"(\d{2}\.\d{2})(?:-.*)?")
_TRITON = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
TRITON_RELEASES: Final = Path(__file__).resolve().parent.parent / "chart" / "triton-releases.yaml"
"""The table of NGC releases and the Triton version each ships."""


@dataclass(frozen=True, order=True)
class Release:
    """One NGC release; ordered by date."""

    year: int
    """Two digits, as NGC writes it (26 for 2026)."""
    month: int

    @classmethod
    def parse(cls, text: str) -> Release:
        """``26.05`` (or NVIDIA's branch spelling ``r26.05``)."""
        matched = _RELEASE.fullmatch(text.strip())
        if matched is None or not 1 <= int(matched.group(2)) <= 12:
            raise ReleaseError(f"{text!r} is not an NGC release: write YY.MM, such as 26.10")
        return cls(int(matched.group(1)), int(matched.group(2)))

    @classmethod
    def from_tag(cls, tag: str) -> Release:
        """The release an NGC image tag names (``26.10-py3`` is 26.10)."""
        matched = _TAG.fullmatch(tag.strip())
        if matched is None:
            raise ReleaseError(
                f"image tag {tag!r} names no NGC release: NGC tags start with YY.MM "
                "(26.10-py3); check a custom image by the release it is built from"
            )
        return cls.parse(matched.group(1))

    def previous(self) -> Release:
        """The month before: the last release a range "prior to" this one covers."""
        return Release(self.year - 1, 12) if self.month == 1 else Release(self.year, self.month - 1)

    def next(self) -> Release:
        return Release(self.year + 1, 1) if self.month == 12 else Release(self.year, self.month + 1)

    def __str__(self) -> str:
        return f"{self.year:02d}.{self.month:02d}"


def triton_versions(path: Path = TRITON_RELEASES) -> dict[Release, str]:
    """Each NGC release of the table and the Triton version it ships (``2.74.0``)."""
    table = yaml.safe_load(path.read_text())["releases"]
    return {Release.parse(str(release)): str(version) for release, version in table.items()}


def triton_version(release: Release, path: Path = TRITON_RELEASES) -> str:
    """The Triton version ``release`` ships; ReleaseError where the table lacks it."""
    versions = triton_versions(path)
    if release not in versions:
        raise ReleaseError(
            f"{path.name} names no Triton for NGC {release}: add the release and the Triton "
            "version it ships (NVIDIA's release notes give both)"
        )
    return versions[release]


def release_of_triton(version: str, path: Path = TRITON_RELEASES) -> Release:
    """The NGC release that ships Triton ``version`` (``2.40`` or ``2.40.0``)."""
    matched = _TRITON.fullmatch(version.strip().lstrip("v"))
    if matched is None:
        raise ReleaseError(f"{version!r} is not a Triton version: write MAJOR.MINOR, such as 2.74")
    wanted = (int(matched.group(1)), int(matched.group(2)))
    for release, shipped in triton_versions(path).items():
        major, minor = (int(part) for part in shipped.split(".")[:2])
        if (major, minor) == wanted:
            return release
    raise ReleaseError(
        f"{path.name} names no NGC release of Triton {version}: add it with the release that "
        "ships it"
    )
