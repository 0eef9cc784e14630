"""Every generated file of the repository, written from its one source: `make generate`; with
`--check` (in `make lint`), exit 1 naming each file that is not what its source makes.

- chart/values.schema.json and chart/README.md's values table, from chart/values.yaml
  (scripts/chart_values.py);
- chart/Chart.yaml's appVersion: the Triton of its ngcRelease (chart/triton-releases.yaml);
- schema.yaml, deployer/rbac.yaml and deployer/marketplace/test-schema.yaml, from
  schema.form.yaml and the chart (scripts/marketplace_form.py);
- SECURITY.md's images table, from the pins (`python -m security images`).

Usage: python -m scripts.generate [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Final

import jsonschema
import yaml

from scripts import chart_values, marketplace_form
from security import images
from security.errors import ReleaseError
from security.releases import Release, triton_version

ROOT: Final = Path(__file__).resolve().parent.parent
COMMAND: Final = "make generate"
_APP_VERSION = re.compile(r'(?m)^(appVersion:\s*")([^"]*)(")$')


def chart_yaml(root: Path) -> str:
    """chart/Chart.yaml with its appVersion the Triton version of its ngcRelease."""
    text = (root / "chart" / "Chart.yaml").read_text()
    release = yaml.safe_load(text)["annotations"]["ngcRelease"]
    version = triton_version(Release.parse(str(release)))
    if not _APP_VERSION.search(text):
        raise ValueError('chart/Chart.yaml has no `appVersion: "X.Y.Z"` line to write')
    return _APP_VERSION.sub(lambda m: f"{m.group(1)}{version}{m.group(3)}", text)


def outputs(root: Path) -> dict[Path, str]:
    """Each generated file, with the text its source makes."""
    wanted = chart_values.outputs(root / "chart")
    chart_schema = json.loads(wanted[root / "chart" / "values.schema.json"])
    wanted[root / "chart" / "Chart.yaml"] = chart_yaml(root)
    wanted.update(marketplace_form.outputs(root, chart_schema))
    security = root / "SECURITY.md"
    wanted[security] = images.replaced(security.read_text(), images.table(images.rows(root)))
    return wanted


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args(argv)
    try:
        wanted = outputs(root)
    except (ValueError, ReleaseError, jsonschema.SchemaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, text in wanted.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(root)} is not what its source makes: run `{COMMAND}`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(root)}")
    if not stale:
        print("every generated file is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
