"""Run inside the deployer image by tests/deployer/test_image.py (mounted, with the image's own
Python): prints, as JSON, what the image holds. ``TEST_FILES`` names this project's test files
(``/tests/PATH``), none of which may be in it. The standard library only."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "make")
FILES = (
    "/bin/deploy.sh",
    "/bin/deploy_with_tests.sh",
    "/data/chart/Chart.yaml",
    "/data/schema.yaml",
    "/data-test/schema.yaml",
    "/usr/local/bin/helm",
)
BUILD_LEFTOVERS = ("/wheels", "/src", "/opt/build", "/tmp/dist", "/tests")
SKIPPED = ("/proc", "/sys", "/dev")


def main() -> None:
    ours = json.loads(os.environ["TEST_FILES"])
    found: dict[str, Any] = {"uid": os.getuid(), "gid": os.getgid()}
    found["dists"] = sorted(
        f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()
    )
    found["compilers"] = [c for c in COMPILERS if shutil.which(c)]
    helm = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True)
    found["helm"] = helm.stdout.strip()
    found["files"] = {p: os.access(p, os.X_OK) for p in FILES if Path(p).exists()}
    found["leftovers"] = [p for p in BUILD_LEFTOVERS if Path(p).exists()]
    found["test_files"], found["venvs"] = [], []
    for top, dirs, files in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if str(Path(top, d)) not in SKIPPED]
        paths = [str(Path(top, f)) for f in files]
        found["test_files"] += [p for p in paths if any(p.endswith(o) for o in ours)]
        found["venvs"] += [p for p in paths if p.endswith("/pyvenv.cfg")]
        found["venvs"] += [str(Path(top, d)) for d in dirs if d == ".venv"]
    print(json.dumps(found))


if __name__ == "__main__":
    main()
