"""`helm template` runs kept on disk (``build/test/helm-renders``), shared by the test processes
of a run and kept between runs: an edit that leaves the chart alone renders nothing again, and
two xdist workers render a given input once.

The key is everything helm reads: the binary (its path, size and modification time), every file
of the chart (or the packaged chart's bytes), the values files' contents, the values, the
release, the namespace and the other arguments. helm's answer is kept whole (exit code, output,
error), so a refused value is replayed with helm's own message. Entries unused for
``KEEP_UNUSED_S`` are removed by ``prune`` (the test runner calls it before the lanes start).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from common.processes import brief_go_environment

CACHE_DIR = Path(__file__).resolve().parents[2] / "build" / "test" / "helm-renders"
KEEP_UNUSED_S = 3 * 24 * 3600.0
KEEP_HALF_WRITTEN_S = 3600.0
DISABLE_VARIABLE = "HELM_RENDER_CACHE"
"""Set to ``0`` to run helm for every render (the cache is then neither read nor written)."""


@dataclass(frozen=True)
class HelmAnswer:
    """What one ``helm template`` run gave."""

    returncode: int
    stdout: str
    stderr: str


def _tree_digest(path: Path) -> str:
    """A digest of a chart folder's files (names and contents), or of a packaged chart."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _binary_identity(helm: str) -> list[str | int]:
    real = Path(helm).resolve()
    status = real.stat()
    return [str(real), status.st_size, status.st_mtime_ns]


def template(
    helm: str,
    chart: str,
    release: str,
    namespace: str,
    values_files: Sequence[str],
    values_yaml: str,
    extra_args: Sequence[str],
) -> HelmAnswer:
    """``helm template RELEASE CHART --namespace NAMESPACE --values FILE... --values VALUES
    EXTRA...``, from the cache when this input was rendered before."""
    enabled = os.environ.get(DISABLE_VARIABLE, "1") != "0"
    entry: Path | None = None
    if enabled:
        key = json.dumps(
            [
                _binary_identity(helm),
                _tree_digest(Path(chart)),
                [Path(f).read_text() for f in values_files],
                values_yaml,
                release,
                namespace,
                list(extra_args),
            ]
        )
        entry = CACHE_DIR / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
        with contextlib.suppress(FileNotFoundError, ValueError):
            answer = HelmAnswer(**json.loads(entry.read_text()))
            entry.touch()  # used: kept by prune
            return answer
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        values_file.write(values_yaml)
        values_file.flush()
        command = [helm, "template", release, chart, "--namespace", namespace]
        for path in values_files:
            command += ["--values", path]
        command += ["--values", values_file.name, *extra_args]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, env=brief_go_environment()
        )
    answer = HelmAnswer(result.returncode, result.stdout, result.stderr)
    if entry is not None:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: a reader beside it sees all of it or nothing.
        with tempfile.NamedTemporaryFile("w", dir=CACHE_DIR, suffix=".tmp", delete=False) as out:
            json.dump(asdict(answer), out)
        Path(out.name).replace(entry)
    return answer


def prune(now: float | None = None) -> int:
    """Remove entries unused for ``KEEP_UNUSED_S``, and files a writer left half-written over
    ``KEEP_HALF_WRITTEN_S`` ago; how many were removed."""
    if not CACHE_DIR.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for entry in CACHE_DIR.iterdir():
        keep_s = KEEP_HALF_WRITTEN_S if entry.suffix == ".tmp" else KEEP_UNUSED_S
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < now - keep_s:
                entry.unlink()
                removed += 1
    return removed
