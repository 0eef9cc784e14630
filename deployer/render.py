"""The one place that runs Helm: ``helm template`` of the chart into plain dicts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer import yamlio
from deployer.errors import RenderError

DEFAULT_HELM = Path("/usr/local/bin/helm")
"""Where the deployer image installs helm."""


def find_helm(explicit: str | None = None, *, env: Mapping[str, str] | None = None) -> Path:
    """The helm binary: ``--helm``, else ``$HELM``, else ``/usr/local/bin/helm``, else PATH."""
    environ = os.environ if env is None else env
    for candidate in (explicit, environ.get("HELM")):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise RenderError(f"helm not found at {path}: pass --helm PATH or set $HELM")
            return path
    if DEFAULT_HELM.is_file():
        return DEFAULT_HELM
    found = shutil.which("helm")
    if found is None:
        raise RenderError(
            f"helm not found (not at {DEFAULT_HELM}, not on PATH): pass --helm PATH or set $HELM"
        )
    return Path(found)


def _helm_message(stderr: str) -> str:
    """Helm's own words, without its `Error: ` prefix and template position noise."""
    lines = [
        line.removeprefix("Error: ")
        for line in stderr.strip().splitlines()
        if line.strip() and "--debug flag" not in line
    ]
    return "\n".join(lines) or "helm printed nothing"


def render(
    *,
    helm: Path,
    chart: Path,
    release: str,
    namespace: str,
    values: Mapping[str, Any],
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Render ``chart`` with ``values`` for ``release`` in ``namespace``.

    Returns every object ``helm template`` prints, test hooks included, in Helm's install
    order. Raises RenderError with Helm's message (a chart ``fail`` or a schema rejection).
    """
    if not (chart / "Chart.yaml").is_file():
        raise RenderError(f"{chart} is not a Helm chart (no Chart.yaml): pass --chart DIR")
    with tempfile.TemporaryDirectory(prefix="deployer-values-") as workdir:
        values_file = Path(workdir) / "values.yaml"
        values_file.write_text(yaml.safe_dump(dict(values), sort_keys=True))
        command = [
            str(helm),
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--values",
            str(values_file),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RenderError(f"could not run {helm} template: {exc}") from exc
    if done.returncode != 0:
        raise RenderError(f"helm template failed: {_helm_message(done.stderr)}")
    try:
        documents = list(yamlio.load_all(done.stdout))
    except yaml.YAMLError as exc:
        raise RenderError(f"helm template printed invalid YAML: {exc}") from exc
    objects = [doc for doc in documents if doc]
    for doc in objects:
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            raise RenderError(
                "helm template printed a document without kind or apiVersion: check the chart"
            )
    return objects
