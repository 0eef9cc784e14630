"""The release's version, declared once (scripts/release.py).

Cases:
- every file that states the version states the chart's, and the CHANGELOG has a dated entry
  for it: this tree can be released as what it says it is;
- `set-version` writes the version in each file (only that line), turns the CHANGELOG's
  Unreleased entry into the release's, dated, under a new empty Unreleased heading, and leaves
  a tree `check` accepts; run again it changes nothing;
- `check` names every disagreeing file, a missing or undated CHANGELOG entry, a version not
  newer than one the CHANGELOG lists, and a version that is not MAJOR.MINOR.PATCH;
  `set-version` refuses an empty Unreleased entry and changes nothing;
- the baseline fixtures are what `make upgrade-baseline` writes from the commit the record
  names: the same chart files and the same deployer payload.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from scripts import release
from tests.conftest import ROOT, helm_path

VERSION = release.declared_version(ROOT)
FILES = [s.path for s in release.STATEMENTS] + [release.CHANGELOG]


def test_this_tree_states_one_version() -> None:
    assert release.problems(ROOT, VERSION) == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The files that state the version, copied, with one change listed as Unreleased."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    changelog = tmp_path / release.CHANGELOG
    changelog.write_text(
        re.sub(
            r"(?s)## \[Unreleased\]\n.*?(?=\n## \[)",
            "## [Unreleased]\n\n### Fixed\n\n- Something that was wrong.\n",
            changelog.read_text(),
            count=1,
        )
    )
    return tmp_path


def _next_minor() -> str:
    major, minor, _ = release.parse_version(VERSION)
    return f"{major}.{minor + 1}.0"


def test_set_version_writes_every_statement_and_dates_the_changelog(tree: Path) -> None:
    new = _next_minor()
    before = {name: (tree / name).read_text() for name in FILES}
    assert release.main(["set-version", new, "--date", "2030-01-31"], root=tree) == 0
    for statement in release.STATEMENTS:
        assert statement.read(tree) == new
        old_lines = before[statement.path].splitlines()
        new_lines = (tree / statement.path).read_text().splitlines()
        changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
        assert len(changed) == 1, (statement.path, changed)
    entries = release.changelog_entries((tree / release.CHANGELOG).read_text())
    assert [(e.version, e.date) for e in entries[:3]] == [
        ("Unreleased", None),
        (new, "2030-01-31"),
        (VERSION, entries[2].date),
    ]
    assert entries[0].body == ""
    assert entries[1].body == "### Fixed\n\n- Something that was wrong."
    assert release.problems(tree, new) == []

    after = {name: (tree / name).read_text() for name in FILES}
    assert release.main(["set-version", new, "--date", "2030-02-01"], root=tree) == 0
    assert {name: (tree / name).read_text() for name in FILES} == after


def test_check_names_every_problem(tree: Path) -> None:
    new = _next_minor()
    found = release.problems(tree, new)
    for statement in release.STATEMENTS:
        assert any(p.startswith(f"{statement.path} states {VERSION}") for p in found), statement
    assert any(f"no dated entry for {new}" in p for p in found)
    assert len(found) == len(release.STATEMENTS) + 1

    assert any(
        f"lists {VERSION}: a release must be newer" in p for p in release.problems(tree, "0.0.1")
    )
    assert release.problems(tree, "1.0") == [
        "'1.0' is not a release version: write MAJOR.MINOR.PATCH (such as 0.3.0)"
    ]
    assert release.problems(tree, "v1.0.0")[0].startswith("'v1.0.0' is not a release version")


def test_set_version_needs_what_changed(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changelog = tree / release.CHANGELOG
    changelog.write_text(
        changelog.read_text().replace("### Fixed\n\n- Something that was wrong.\n", "")
    )
    before = {name: (tree / name).read_text() for name in FILES}
    assert release.main(["set-version", _next_minor()], root=tree) == 1
    assert "no Unreleased entry to release" in capsys.readouterr().err
    assert {name: (tree / name).read_text() for name in FILES} == before


def _commit_reachable(commit: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


def _files(archive: Path, strip: str = "") -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name.removeprefix(strip): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_the_baseline_is_what_its_commit_packages(tmp_path: Path) -> None:
    record = yaml.safe_load((ROOT / release.BASELINE_RECORD).read_text())
    if not _commit_reachable(record["commit"]):
        pytest.skip(f"the baseline's commit {record['commit']} is not in this clone (shallow?)")
    written = release.write_baseline(ROOT, record["commit"], helm_path("helm4"), dest=tmp_path)
    for path in written[:2]:
        kept = ROOT / path.relative_to(tmp_path)
        assert _files(path) == _files(kept), kept
    fresh = yaml.safe_load(written[2].read_text())
    assert (fresh["version"], fresh["commit"]) == (record["version"], record["commit"])
    chart = _files(written[0], strip=f"{release.chart_name(ROOT)}/")
    assert yaml.safe_load(io.BytesIO(chart["Chart.yaml"]))["version"] == record["version"]
