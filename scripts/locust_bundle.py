"""Write the load-test chart's bundle: the locustfile and every module of this repository it
imports, at their paths in the repository, under ``locust/chart/files/`` (ignored by git).

Helm reads only files inside a chart, so the chart cannot ship ``locust/`` itself; the bundle is
generated instead of copied, so it can never fall behind. The modules are found by following the
locustfile's imports (``modulefinder``) with only the repository on the search path: the
standard library, Locust and gevent are in Locust's image, and what is not found is not ours.

Usage: python scripts/locust_bundle.py [--out locust/chart/files]   (make locust-bundle)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from modulefinder import ModuleFinder
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
LOCUSTFILE: Final = ROOT / "locust" / "locustfile-bert-large.py"
DEFAULT_OUT: Final = ROOT / "locust" / "chart" / "files"


def bundle_sources(locustfile: Path = LOCUSTFILE) -> list[Path]:
    """The locustfile and the repository's modules it imports, directly or not (relative to
    the repository root), packages' ``__init__.py`` left out: the chart mounts namespaces."""
    # "locust" is the library: the repository's locust/ folder, a namespace on this path,
    # would stand in for it and stop the search.
    finder = ModuleFinder(path=[str(locustfile.parent), str(ROOT)], excludes=["locust"])
    finder.run_script(str(locustfile))
    files = (getattr(module, "__file__", None) for module in finder.modules.values())
    found = {Path(name).resolve() for name in files if name}
    ours = sorted(
        p.relative_to(ROOT)
        for p in found
        if p.is_relative_to(ROOT) and p.name != "__init__.py" and p.suffix == ".py"
    )
    return ours


def write_bundle(out: Path = DEFAULT_OUT, locustfile: Path = LOCUSTFILE) -> list[Path]:
    """Replace ``out`` with the bundle; returns the files written (relative to ``out``)."""
    sources = bundle_sources(locustfile)
    shutil.rmtree(out, ignore_errors=True)
    for relative in sources:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, target)
    return sources


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in write_bundle(args.out):
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
