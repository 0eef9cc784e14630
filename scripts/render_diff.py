"""Compare the chart's renders with those of another commit: every chart/ci values file (and the
defaults), rendered by each helm given, byte for byte (the admin key the chart draws at
random aside). For a change that must not change what the
chart renders, such as one to how its values are declared.

Usage: python -m scripts.render_diff REF HELM [HELM...]
  prints one line per render (same or differs) and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULTS: Final = ("--set", "modelRepository=gs://bucket/models")
RANDOM: Final = re.compile(rb"(?m)^(\s+admin-key: ).*$")
"""The admin key the chart generates at random for each render: masked on both sides."""


def chart_at(ref: str, dest: Path) -> Path:
    """The chart folder of commit ``ref``, written under ``dest``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "chart"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "chart"


def render(helm: Path, chart: Path, arguments: list[str]) -> bytes:
    """``helm template`` of release ``t`` in namespace ``ns``; a refusal renders as its message."""
    done = subprocess.run(
        [str(helm), "template", "t", str(chart), "-n", "ns", *arguments],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        return b"refused: " + done.stderr
    return RANDOM.sub(rb"\1(random)", done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with, such as main")
    parser.add_argument("helms", nargs="+", type=Path, help="helm binaries to render with")
    args = parser.parse_args(argv)
    cases = [("defaults", list(DEFAULTS))] + [
        (path.name, ["-f", str(path)]) for path in sorted((ROOT / "chart" / "ci").glob("*.yaml"))
    ]
    differ = 0
    with tempfile.TemporaryDirectory() as scratch:
        before = chart_at(args.ref, Path(scratch))
        for helm in args.helms:
            for name, arguments in cases:
                old = render(helm, before, arguments)
                new = render(helm, ROOT / "chart", arguments)
                same = old == new and not old.startswith(b"refused: ")
                differ += not same
                verdict = "same   " if same else "DIFFERS"
                print(f"{verdict} {helm.parent.name} {name} ({len(new)} bytes)")
    print(f"{differ} of {len(cases) * len(args.helms)} renders differ from {args.ref}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
