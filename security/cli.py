"""``python -m security``: the release's security checks. Exit 0 when all hold, 1 when a check
finds something (each finding says what to do), 2 on bad input (a malformed record, a tag
that names no release)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from security import bulletins, csaf, deployer_deps, images, manifests
from security.errors import AuditError
from security.releases import Release

ROOT = Path(__file__).resolve().parent.parent
SECURITY_MD = ROOT / "SECURITY.md"


def default_tag(root: Path = ROOT) -> str:
    """The chart's default Triton image tag."""
    return images.default_triton_tag(root)


def check_tag(tag: str, record: bulletins.Record) -> str | None:
    """Why ``tag`` may not be released (its findings), or None."""
    release = Release.from_tag(tag)
    found = bulletins.findings(record, release)
    return bulletins.refusal(record, release, found, tag=tag) if found else None


def _audit(root: Path, today: datetime.date) -> int:
    record = bulletins.load_record()
    problems: list[str] = []
    tag = default_tag(root)
    refused = check_tag(tag, record)
    if refused:
        problems.append(f"the chart's default image (Chart.yaml ngcRelease), {tag}: {refused}")
    else:
        print(
            f"ok: the chart's default image {tag} is in no affected range of "
            f"{len(record.bulletins)} bulletins"
        )
    if stale := bulletins.staleness(record, today):
        problems.append(stale)
    found = manifests.problems(root, manifests.load_record())
    problems += found
    if not found:
        print("ok: every third-party manifest the docs apply is pinned and reviewed")
    document = (root / "SECURITY.md").read_text()
    if images.replaced(document, images.table(images.rows(root))) != document:
        problems.append("SECURITY.md's images table is stale: run `make security-docs`")
    else:
        print("ok: SECURITY.md's images table matches the pins")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _triton(tag: str) -> int:
    record = bulletins.load_record()
    refused = check_tag(tag, record)
    if refused:
        print(refused, file=sys.stderr)
        return 1
    print(
        f"{tag}: no recorded bulletin affects NGC {Release.from_tag(tag)} "
        f"({len(record.bulletins)} bulletins, checked on {record.checked_on})"
    )
    return 0


def _images(root: Path, *, check: bool) -> int:
    path = root / "SECURITY.md"
    document = path.read_text()
    updated = images.replaced(document, images.table(images.rows(root)))
    if check:
        if updated != document:
            print("SECURITY.md's images table is stale: run `make security-docs`", file=sys.stderr)
            return 1
        return 0
    path.write_text(updated)
    return 0


def _deployer_requirements(root: Path) -> int:
    resolved = deployer_deps.pins_from_report(deployer_deps.resolve(root))
    constraints = deployer_deps.constraint_pins((root / "constraints.txt").read_text())
    for name, version in sorted(resolved.items()):
        print(f"{name}=={version}")
    loose = deployer_deps.unpinned(resolved, constraints)
    if loose:
        print(
            f"error: constraints.txt holds no version of {', '.join(loose)}, which the deployer "
            "image installs: run `make constraints`",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m security", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit",
        help="the chart's default Triton against the bulletins, the record's age, the docs' "
        "third-party manifests, SECURITY.md's images table",
    )
    audit.add_argument(
        "--today",
        type=datetime.date.fromisoformat,
        default=datetime.date.today(),
        help="the day the record's age is measured at (YYYY-MM-DD; default today)",
    )
    triton = commands.add_parser("triton", help="check one Triton image tag against the bulletins")
    triton.add_argument("tag", help="an NGC tag, such as 26.10-py3")
    image_table = commands.add_parser("images", help="write SECURITY.md's images table")
    image_table.add_argument("--check", action="store_true", help="only say whether it is stale")
    commands.add_parser(
        "deployer-requirements",
        help="the pinned packages the deployer image installs (asks PyPI), for pip-audit",
    )
    entry = commands.add_parser("csaf-entry", help="a record entry from a bulletin's CSAF file")
    entry.add_argument("file", type=Path, help="NVIDIA/product-security's YEAR/ID/ID.json")
    entry.add_argument(
        "--transcribed-from",
        default="CSAF, NVIDIA/product-security",
        help="which copy was read, for the record (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "audit":
            return _audit(ROOT, args.today)
        if args.command == "triton":
            return _triton(args.tag)
        if args.command == "images":
            return _images(ROOT, check=args.check)
        if args.command == "deployer-requirements":
            return _deployer_requirements(ROOT)
        document = json.loads(args.file.read_text())
        print(csaf.render(csaf.entry(document), transcribed_from=args.transcribed_from))
        return 0
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
