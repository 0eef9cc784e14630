"""The record of NVIDIA's security bulletins for Triton (``triton-bulletins.yaml``) and the check
that a release is in none of their affected ranges.

The record is transcribed from NVIDIA's CSAF files (``python -m security csaf-entry``); each CVE
keeps CSAF's own spelling of its ranges next to the NGC releases they mean. ``checked_on`` says
when the record was last compared with NVIDIA's list of bulletins: a release refuses a record
older than ``MAX_AGE`` (``python -m security audit``), since a bulletin published since then
would go unseen.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from security.errors import RecordError, ReleaseError
from security.releases import Release

RECORD = Path(__file__).with_name("triton-bulletins.yaml")
MAX_AGE = datetime.timedelta(days=31)
"""How old the record may be at a release: NVIDIA publishes Triton bulletins about monthly."""


@dataclass(frozen=True)
class Cve:
    """One vulnerability of a bulletin and the releases it affects."""

    id: str
    cvss: float | None
    """CVSS v3.1 base score (None where the bulletin gives none)."""
    severity: str | None
    first: Release | None
    """First affected release; None where every earlier release is affected."""
    last: Release
    fixed: Release

    def affects(self, release: Release) -> bool:
        return (self.first is None or self.first <= release) and release <= self.last


@dataclass(frozen=True)
class Bulletin:
    id: str
    date: datetime.date
    title: str
    url: str
    severity: str | None
    cves: tuple[Cve, ...]


@dataclass(frozen=True)
class Record:
    checked_on: datetime.date
    """When the record was last compared with NVIDIA's list of bulletins."""
    bulletins: tuple[Bulletin, ...]


@dataclass(frozen=True)
class Finding:
    """A bulletin with the CVEs of it that affect a release."""

    bulletin: Bulletin
    cves: tuple[Cve, ...]


def _date(value: Any, where: str) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError as exc:
        raise RecordError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from exc


def _cve(raw: Mapping[str, Any], where: str) -> Cve:
    try:
        affected = raw["affected"]
        first = Release.parse(affected["first"]) if "first" in affected else None
        cve = Cve(
            id=raw["cve"],
            cvss=raw.get("cvss"),
            severity=raw.get("severity"),
            first=first,
            last=Release.parse(affected["last"]),
            fixed=Release.parse(raw["fixed"]),
        )
    except (KeyError, TypeError, ReleaseError) as exc:
        raise RecordError(f"{where}: a CVE needs cve, affected.last and fixed ({exc})") from exc
    if not cve.last < cve.fixed or (cve.first is not None and cve.last < cve.first):
        raise RecordError(
            f"{where} {cve.id}: affected {cve.first or 'all'}-{cve.last} and fixed in "
            f"{cve.fixed} contradict each other"
        )
    return cve


def parse_record(raw: Any, *, source: str = "the bulletin record") -> Record:
    """The record from its YAML data; RecordError names what is malformed."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("bulletins"), list):
        raise RecordError(f"{source}: expected a mapping with checked_on and a bulletins list")
    bulletins = []
    for item in raw["bulletins"]:
        where = f"{source}, bulletin {item.get('id', '?') if isinstance(item, Mapping) else '?'}"
        if not isinstance(item, Mapping) or not item.get("cves"):
            raise RecordError(f"{where}: a bulletin needs id, date, title, url and its cves")
        try:
            bulletin = Bulletin(
                id=str(item["id"]),
                date=_date(item["date"], where),
                title=item["title"],
                url=item["url"],
                severity=item.get("severity"),
                cves=tuple(_cve(c, where) for c in item["cves"]),
            )
        except KeyError as exc:
            raise RecordError(f"{where}: missing {exc}") from exc
        bulletins.append(bulletin)
    ids = [b.id for b in bulletins]
    if len(set(ids)) != len(ids):
        raise RecordError(f"{source}: a bulletin is listed twice ({sorted(ids)})")
    return Record(
        checked_on=_date(raw.get("checked_on"), f"{source}, checked_on"),
        bulletins=tuple(bulletins),
    )


def load_record(path: Path = RECORD) -> Record:
    return parse_record(yaml.safe_load(path.read_text()), source=str(path.name))


def findings(record: Record, release: Release) -> list[Finding]:
    """The bulletins with a CVE that affects ``release``, oldest first."""
    found = []
    for bulletin in sorted(record.bulletins, key=lambda b: b.date):
        cves = tuple(c for c in bulletin.cves if c.affects(release))
        if cves:
            found.append(Finding(bulletin, cves))
    return found


def first_unaffected(record: Record, release: Release) -> Release:
    """The earliest release from ``release`` on that no recorded CVE affects (a CVE's fixed
    release may itself fall in another bulletin's range)."""
    candidate = release
    while findings(record, candidate):
        candidate = max(c.fixed for f in findings(record, candidate) for c in f.cves)
    return candidate


def _cve_text(cve: Cve) -> str:
    return f"{cve.id} ({cve.cvss})" if cve.cvss is not None else cve.id


def refusal(record: Record, release: Release, found: Iterable[Finding], *, tag: str) -> str:
    """What is wrong with ``release`` and which release to use instead."""
    found = list(found)
    lines = [
        f"image tag {tag} (NGC {release}) is affected by {len(found)} NVIDIA security "
        f"bulletin{'s' if len(found) != 1 else ''} for Triton Inference Server:"
    ]
    for finding in found:
        bulletin = finding.bulletin
        fixed = max(c.fixed for c in finding.cves)
        lines.append(
            f"  {bulletin.id} of {bulletin.date} ({bulletin.severity}): "
            f"{', '.join(_cve_text(c) for c in finding.cves)}; fixed in {fixed} ({bulletin.url})"
        )
    safe = first_unaffected(record, release)
    lines.append(
        f"Use NGC {safe} or later (image.release {safe}); the bulletins are recorded in "
        "security/triton-bulletins.yaml."
    )
    return "\n".join(lines)


def staleness(record: Record, today: datetime.date) -> str | None:
    """Why the record is too old to release with, or None."""
    age = today - record.checked_on
    if age <= MAX_AGE:
        return None
    return (
        f"security/triton-bulletins.yaml was last compared with NVIDIA's bulletins on "
        f"{record.checked_on} ({age.days} days ago, more than {MAX_AGE.days}): add every Triton "
        "bulletin published since (https://www.nvidia.com/en-us/security/, or the CSAF files in "
        "github.com/NVIDIA/product-security with `python -m security csaf-entry FILE`), then set "
        "checked_on to today"
    )
