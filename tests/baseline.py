"""The previous release, which the upgrade tests start from (``make upgrade-baseline``):
its chart as ``helm package`` made it, its deployer image's payload, and the record that names
them with the changes an upgrade is documented to make; and how a release's objects are
compared across an upgrade."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts import release
from tests.conftest import ROOT

RECORD: dict[str, Any] = yaml.safe_load((ROOT / release.BASELINE_RECORD).read_text())
VERSION = str(RECORD["version"])
CHART_NAME = release.chart_name(ROOT)
CHART_PACKAGE = ROOT / release.CHART_BASELINE_DIR / f"{CHART_NAME}-{VERSION}.tgz"
DEPLOYER_PAYLOAD = ROOT / release.DEPLOYER_BASELINE_DIR / f"deployer-{VERSION}.tar.gz"


def ci_files() -> list[str]:
    """The names of the ci values files the baseline's package holds."""
    with tarfile.open(CHART_PACKAGE) as package:
        names = [m.name for m in package.getmembers() if m.isfile()]
    prefix = f"{CHART_NAME}/ci/"
    return sorted(
        n.removeprefix(prefix) for n in names if n.startswith(prefix) and n.endswith("-values.yaml")
    )


def extract_chart(directory: Path, name: str = CHART_NAME) -> Path:
    """The baseline's chart unpacked as ``directory/name``; returns that folder."""
    with tarfile.open(CHART_PACKAGE) as package:
        package.extractall(directory, filter="data")
    chart = directory / CHART_NAME
    if name != CHART_NAME:
        chart = chart.rename(directory / name)
    return chart


def extract_deployer(directory: Path) -> Path:
    """The baseline's deployer image laid out in ``directory`` as its files are in the
    repository (``deployer/``, ``schema.yaml``, ``chart/``); returns ``directory``."""
    with tarfile.open(DEPLOYER_PAYLOAD) as payload:
        payload.extractall(directory, filter="data")
    extract_chart(directory, "chart")
    return directory


# -- comparing a release's objects across an upgrade --------------------------------------------

SELECTING_KINDS = frozenset({"Deployment", "Service", "PodDisruptionBudget"})


@dataclass(frozen=True)
class Snapshot:
    """A release's objects as the API server holds them, by ``Kind/name``."""

    objects: dict[str, dict[str, Any]]

    def identity(self, key: str) -> dict[str, Any]:
        """What may not change across an upgrade: the uid, a Secret's data, a selector, a
        Service's ports."""
        live = self.objects[key]
        kind = key.split("/", 1)[0]
        spec = live.get("spec") or {}
        ports = [
            {k: p.get(k) for k in ("name", "port", "targetPort", "protocol")}
            for p in spec.get("ports", [])
        ]
        return {
            "uid": live["metadata"]["uid"],
            "data": live.get("data") if kind == "Secret" else None,
            "selector": spec.get("selector") if kind in SELECTING_KINDS else None,
            "ports": ports if kind == "Service" else None,
        }


def snapshot(items: list[dict[str, Any]]) -> Snapshot:
    return Snapshot({f"{o['kind']}/{o['metadata']['name']}": o for o in items})


def documented_changes(ci_file: str, fullname: str) -> tuple[set[str], set[str]]:
    """The objects the record says an upgrade adds and removes for ``ci_file``."""
    changes = RECORD.get("changes") or {}
    added: set[str] = set()
    removed: set[str] = set()
    for key in ("*", ci_file):
        entry = changes.get(key) or {}
        added |= {k.replace("{fullname}", fullname) for k in entry.get("added", [])}
        removed |= {k.replace("{fullname}", fullname) for k in entry.get("removed", [])}
    return added, removed


def compare(before: Snapshot, after: Snapshot, *, ci_file: str, fullname: str) -> list[str]:
    """What the upgrade broke, each a sentence; nothing when it kept the release whole."""
    problems = []
    added, removed = documented_changes(ci_file, fullname)
    gone = set(before.objects) - set(after.objects)
    new = set(after.objects) - set(before.objects)
    if gone != removed:
        problems.append(f"objects removed: {sorted(gone)}, documented: {sorted(removed)}")
    if new != added:
        problems.append(f"objects added: {sorted(new)}, documented: {sorted(added)}")
    for key in sorted(set(before.objects) & set(after.objects)):
        was, now = before.identity(key), after.identity(key)
        for aspect in ("uid", "data", "selector", "ports"):
            if was[aspect] != now[aspect]:
                what = "replaced (a new uid)" if aspect == "uid" else f"{aspect} changed"
                problems.append(f"{key}: {what}: {was[aspect]!r} -> {now[aspect]!r}")
    return problems
