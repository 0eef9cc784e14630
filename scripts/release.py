"""The release's version, declared once, and the steps of ``make release`` that are not helm's.

The release's version is the chart's (``chart/Chart.yaml`` ``version``). Three other files must
state it, because what reads them cannot read the chart: ``schema.yaml`` ``publishedVersion``
(Marketplace reads it from the deployer image, and it is that image's tag), ``pyproject.toml``
``version`` (the deployer's package) and the README's install command. ``set-version`` writes
all four and dates the CHANGELOG's Unreleased entry; ``check`` refuses a release whose files
disagree, whose CHANGELOG has no dated entry for it, or that is not newer than every release
the CHANGELOG lists, and (with ``--chart-repository``) one the registry already holds.

Only the standard library: ``make release`` runs this before any environment is built.

Usage (the Makefile's ``version``, ``release`` and ``upgrade-baseline`` targets):
  python3 scripts/release.py version
  python3 scripts/release.py set-version X.Y.Z [--date YYYY-MM-DD]
  python3 scripts/release.py check X.Y.Z [--chart-repository oci://REGISTRY/charts --helm HELM]
  python3 scripts/release.py push PACKAGE --chart-repository oci://REGISTRY/charts --helm HELM
  python3 scripts/release.py baseline GIT_REF --helm HELM
"""

from __future__ import annotations

import argparse
import datetime
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
CHANGELOG: Final = "CHANGELOG.md"
SEMVER: Final = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
"""A release version: MAJOR.MINOR.PATCH (Marketplace tags images with it and with MAJOR.MINOR,
so no pre-release or build suffix)."""

CHART_BASELINE_DIR: Final = Path("tests/chart/fixtures")
DEPLOYER_BASELINE_DIR: Final = Path("tests/deployer/fixtures")
BASELINE_RECORD: Final = CHART_BASELINE_DIR / "baseline.yaml"
DEPLOYER_PAYLOAD: Final = ("deployer", "schema.yaml")
"""What the deployer image holds besides the chart and helm: its package and the form."""


class ReleaseError(Exception):
    """A release step cannot go on; the message says what to change."""


@dataclass(frozen=True)
class Statement:
    """One file's statement of the release's version: a line that a pattern finds."""

    path: str
    what: str
    pattern: re.Pattern[str]
    """Group 1: what comes before the version; group 2: the version."""

    def read(self, root: Path) -> str:
        """The version the file states; ReleaseError if it states none or several."""
        found = self.pattern.findall((root / self.path).read_text())
        if len(found) != 1:
            raise ReleaseError(
                f"{self.path}: expected one {self.what}, found {len(found)}: restore the line"
            )
        return str(found[0][1])

    def write(self, root: Path, version: str) -> None:
        self.read(root)
        path = root / self.path
        written = self.pattern.sub(lambda m: f"{m.group(1)}{version}{m.group(3)}", path.read_text())
        path.write_text(written)


STATEMENTS: Final = (
    Statement("chart/Chart.yaml", "`version:`", re.compile(r"(?m)^(version:\s*)(\S+)()$")),
    Statement(
        "schema.yaml",
        "`publishedVersion:`",
        re.compile(r'(?m)^(\s+publishedVersion:\s*")([^"]+)(")$'),
    ),
    Statement(
        "pyproject.toml", "`version =` in [project]", re.compile(r'(?m)^(version = ")([^"]+)(")$')
    ),
    Statement(
        "README.md",
        "install line `export CHART=... VERSION=...`",
        re.compile(r"(?m)^(export CHART=.*\bVERSION=)(\S+)()$"),
    ),
)
"""Every place that states the release's version; the chart's is the declaration."""


def parse_version(text: str) -> tuple[int, int, int]:
    matched = SEMVER.fullmatch(text)
    if matched is None:
        raise ReleaseError(
            f"{text!r} is not a release version: write MAJOR.MINOR.PATCH (such as 0.3.0)"
        )
    major, minor, patch = (int(part) for part in matched.groups())
    return major, minor, patch


def declared_version(root: Path = ROOT) -> str:
    """The release's version: the chart's."""
    return STATEMENTS[0].read(root)


# -- the CHANGELOG (keep-a-changelog) -------------------------------------------------------

_HEADING = re.compile(r"(?m)^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?[ \t]*$")
UNRELEASED: Final = "Unreleased"


@dataclass(frozen=True)
class Entry:
    version: str
    date: str | None
    body: str
    """The entry's text under its heading, stripped."""


def changelog_entries(text: str) -> list[Entry]:
    """The entries, newest first, as the file lists them."""
    headings = list(_HEADING.finditer(text))
    entries = []
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        body = re.split(r"(?m)^\[[^\]]+\]: ", body, maxsplit=1)[0]  # link references close it
        entries.append(Entry(heading["version"], heading["date"], body.strip()))
    return entries


def date_unreleased(text: str, version: str, today: datetime.date) -> str:
    """``text`` with its Unreleased entry become ``version``'s, dated ``today``, under a new
    empty Unreleased heading; unchanged when ``version`` already has an entry."""
    entries = changelog_entries(text)
    if any(e.version == version for e in entries):
        return text
    if not entries or entries[0].version != UNRELEASED or not entries[0].body:
        raise ReleaseError(
            f"{CHANGELOG}: no Unreleased entry to release as {version}: list what changed under "
            f"`## [{UNRELEASED}]` first"
        )
    return text.replace(
        f"## [{UNRELEASED}]",
        f"## [{UNRELEASED}]\n\n## [{version}] - {today.isoformat()}",
        1,
    )


# -- checks ------------------------------------------------------------------------------------


def problems(root: Path, version: str) -> list[str]:
    """Why ``version`` cannot be released from ``root`` (every reason), or nothing."""
    try:
        wanted = parse_version(version)
    except ReleaseError as exc:
        return [str(exc)]
    found: list[str] = []
    for statement in STATEMENTS:
        try:
            stated = statement.read(root)
        except ReleaseError as exc:
            found.append(str(exc))
            continue
        if stated != version:
            found.append(
                f"{statement.path} states {stated} ({statement.what}), not {version}: "
                f"run `make version VERSION={version}`"
            )
    path = root / CHANGELOG
    entries = changelog_entries(path.read_text()) if path.exists() else []
    entry = next((e for e in entries if e.version == version), None)
    if entry is None or entry.date is None or not entry.body:
        found.append(
            f"{CHANGELOG} has no dated entry for {version} (`## [{version}] - YYYY-MM-DD` and "
            f"what changed): `make version VERSION={version}` dates the Unreleased one"
        )
    for other in entries:
        if other.version in (UNRELEASED, version) or not SEMVER.fullmatch(other.version):
            continue
        if parse_version(other.version) >= wanted:
            found.append(f"{CHANGELOG} lists {other.version}: a release must be newer than it")
    return found


def helm_registry(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def chart_name(root: Path = ROOT) -> str:
    matched = re.search(r"(?m)^name:\s*(\S+)$", (root / "chart" / "Chart.yaml").read_text())
    if matched is None:
        raise ReleaseError("chart/Chart.yaml has no `name:`")
    return matched.group(1)


def published_problem(helm: Path, chart_repository: str, name: str, version: str) -> str | None:
    """Why the registry stops the release: it already holds ``version`` (a released version
    is never replaced), or it cannot be read. None when the version is free."""
    reference = f"{chart_repository.rstrip('/')}/{name}"
    shown = helm_registry(helm, "show", "chart", reference, "--version", version)
    if shown.returncode == 0:
        return (
            f"{reference} {version} is already published: a released version is never "
            "replaced; release the next one (`make version VERSION=...`)"
        )
    if "not found" in shown.stderr:
        return None
    return f"cannot read {reference} ({shown.stderr.strip()}): check REGISTRY and your login"


# -- publishing -----------------------------------------------------------------------------


def push(helm: Path, package: Path, chart_repository: str) -> tuple[str, str]:
    """Push ``package`` (and the provenance file beside it, which helm pushes with it) to
    ``chart_repository``; the reference and digest helm reports."""
    if not package.with_name(package.name + ".prov").exists():
        raise ReleaseError(f"{package}.prov is missing: a release is signed (`make package`)")
    pushed = helm_registry(helm, "push", str(package), chart_repository)
    if pushed.returncode != 0:
        raise ReleaseError(f"helm push failed: {pushed.stderr.strip()}")
    said = pushed.stdout + pushed.stderr
    reference = re.search(r"Pushed: (\S+)", said)
    digest = re.search(r"Digest: (\S+)", said)
    if reference is None or digest is None:
        raise ReleaseError(f"helm push said neither what nor where it pushed: {said.strip()}")
    return reference.group(1), digest.group(1)


# -- the upgrade tests' baseline --------------------------------------------------------------


def _git(root: Path, *args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout


def write_baseline(root: Path, ref: str, helm: Path, *, dest: Path | None = None) -> list[Path]:
    """The upgrade tests' baseline from the release at ``ref`` of the repository ``root``: its
    chart packaged as ``helm package`` does, the deployer image's payload (its package and
    schema.yaml) as a tarball, and the record naming both (its documented changes emptied),
    written under ``dest`` (default ``root``) in place of the previous baseline. Returns the
    files written."""
    dest = dest or root
    commit = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    chart_dir, deployer_dir = dest / CHART_BASELINE_DIR, dest / DEPLOYER_BASELINE_DIR
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(_git(root, "archive", commit, "chart"))) as tar:
            tar.extractall(work, filter="data")
        version = STATEMENTS[0].read(work)  # the chart's version; the rest may predate this
        packaged = subprocess.run(
            [str(helm), "package", str(work / "chart"), "--destination", str(work)],
            capture_output=True,
            text=True,
            check=False,
        )
        if packaged.returncode != 0:
            raise ReleaseError(f"helm package of {ref}'s chart failed: {packaged.stderr}")
        package = next(work.glob("*.tgz"))
        chart_dir.mkdir(parents=True, exist_ok=True)
        for old in chart_dir.glob("*.tgz"):
            old.unlink()
        chart = chart_dir / package.name
        shutil.copyfile(package, chart)
    deployer_dir.mkdir(parents=True, exist_ok=True)
    for old in deployer_dir.glob("deployer-*.tar.gz"):
        old.unlink()
    deployer = deployer_dir / f"deployer-{version}.tar.gz"
    deployer.write_bytes(_git(root, "archive", "--format=tar.gz", "-9", commit, *DEPLOYER_PAYLOAD))
    record = dest / BASELINE_RECORD
    record.write_text(baseline_record(version, commit))
    return [chart, deployer, record]


def baseline_record(version: str, commit: str) -> str:
    return f"""\
# The upgrade tests' baseline: the previous release, written by
# `make upgrade-baseline BASELINE_REF=<its commit or tag>` (scripts/release.py). Its chart as
# `helm package` makes it is beside this file; the deployer image's payload (the deployer
# package and schema.yaml) is tests/deployer/fixtures/deployer-{version}.tar.gz.
version: {version}
commit: {commit}
# What upgrading a release from the baseline changes in the release's set of objects, by ci
# file of the baseline (`*` for all): `added` and `removed`, lists of `Kind/name` where
# `{{fullname}}` stands for the release's full name. Each entry is a CHANGELOG.md line of the
# release that makes it; none means every upgrade keeps every object (same uid, in place).
changes: {{}}
"""


# -- the command line -------------------------------------------------------------------------


def _report_problems(found: list[str]) -> int:
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if found else 0


def main(argv: Sequence[str] | None = None, *, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the release's version (the chart's)")
    setting = commands.add_parser("set-version", help="write VERSION everywhere it is stated")
    setting.add_argument("version")
    setting.add_argument(
        "--date", type=datetime.date.fromisoformat, default=datetime.date.today(),
        help="the release's date in the CHANGELOG (default today)",
    )  # fmt: skip
    checking = commands.add_parser("check", help="refuse a release that cannot go out")
    checking.add_argument("version")
    pushing = commands.add_parser("push", help="push a signed package, say what was published")
    pushing.add_argument("package", type=Path)
    for sub in (checking, pushing):
        sub.add_argument("--chart-repository", help="oci://REGISTRY/charts")
        sub.add_argument("--helm", type=Path, default=Path("helm"))
    baseline = commands.add_parser("baseline", help="write the upgrade tests' baseline")
    baseline.add_argument("ref", help="the previous release's commit or tag")
    baseline.add_argument("--helm", type=Path, default=Path("helm"))
    args = parser.parse_args(argv)

    actions: dict[str, Callable[[], int]] = {
        "version": lambda: _print(declared_version(root)),
        "set-version": lambda: _set_version(root, args.version, args.date),
        "check": lambda: _check(root, args.version, args.chart_repository, args.helm),
        "push": lambda: _push(root, args.package, args.chart_repository, args.helm),
        "baseline": lambda: _baseline(root, args.ref, args.helm),
    }
    try:
        return actions[args.command]()
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _print(text: str) -> int:
    print(text)
    return 0


def _set_version(root: Path, version: str, today: datetime.date) -> int:
    parse_version(version)
    path = root / CHANGELOG
    dated = date_unreleased(path.read_text(), version, today)
    for statement in STATEMENTS:
        statement.write(root, version)
    path.write_text(dated)
    print(f"{version}: written in {', '.join(s.path for s in STATEMENTS)}; {CHANGELOG} dated")
    return 0


def _check(root: Path, version: str, chart_repository: str | None, helm: Path) -> int:
    found = problems(root, version)
    if not found and chart_repository:
        taken = published_problem(helm, chart_repository, chart_name(root), version)
        found += [taken] if taken else []
    if not found:
        print(f"ok: {version} is stated alike everywhere, dated in {CHANGELOG}, not yet published")
    return _report_problems(found)


def _push(root: Path, package: Path, chart_repository: str | None, helm: Path) -> int:
    if not chart_repository:
        raise ReleaseError("--chart-repository is required")
    reference, digest = push(helm, package, chart_repository)
    name, version = chart_name(root), declared_version(root)
    print(f"published {reference} ({digest}) with its provenance file")
    print(f"  helm install RELEASE {chart_repository.rstrip('/')}/{name} --version {version}")
    return 0


def _baseline(root: Path, ref: str, helm: Path) -> int:
    for path in write_baseline(root, ref, helm):
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
