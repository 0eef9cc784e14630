"""The model-loading benchmark's plumbing (its figures come from `make bench-model-loading`).

Cases: one short run on the tiny sample (two rounds) serves the repository from the local
folder and from ``gs://`` in the emulator, and writes a report whose times are all positive
and whose table has a row per source and one of their difference; fewer than two rounds are
refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.model_loading import main

pytestmark = pytest.mark.slow


def test_a_short_run_measures_both_sources(
    helm4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--size", "tiny", "--rounds", "2", "--timeout", "120"]
    assert main([*argv, "--helm", str(helm4), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "model-loading-tiny.json").read_text())
    results = {r["source"]: r for r in report["results"]}
    assert set(results) == {"local", "gcs-emulator"}
    assert results["gcs-emulator"]["repository"] == "gs://models/tiny"
    for result in results.values():
        assert len(result["start_s"]) == len(result["reload_s"]) == 2
        assert all(s > 0 for s in result["start_s"] + result["reload_s"])
    assert report["repository_megabytes"] > 0
    rows = [line for line in report["table"].splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[2:]] == [
        "| local",
        "| gcs-emulator",
        "| gcs-emulator minus local, per round",
    ]
    assert report["table"] in capsys.readouterr().out


def test_bad_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--rounds", "1"])
    assert exit_info.value.code == 2
    assert "--rounds must be at least 2" in capsys.readouterr().err
