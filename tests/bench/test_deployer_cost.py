"""The deployer benchmark's plumbing (its figures come from `make bench-deployer`).

Cases:
- one run measures every phase, and the phases add up to the total;
- writing the Deployer section replaces only that section of docs/benchmarks.md, or adds it
  (and the file) when absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.deployer_cost import SECTION, one_run, write_section


def test_one_run_measures_each_phase(helm4: Path) -> None:
    phases = one_run(helm4)
    assert set(phases) == {"validate", "render", "apply", "total"}
    assert all(seconds > 0 for seconds in phases.values())
    parts = phases["validate"] + phases["render"] + phases["apply"]
    assert parts == pytest.approx(phases["total"])


def test_the_section_is_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, f"{SECTION}\n\nfirst\n")
    assert doc.read_text() == f"# Benchmarks\n\n{SECTION}\n\nfirst\n"
    doc.write_text(
        f"# Benchmarks\n\n## Locust\n\nkept\n\n{SECTION}\n\nold\n\n## Triton\n\nalso kept\n"
    )
    write_section(doc, f"{SECTION}\n\nnew\n")
    text = doc.read_text()
    assert "old" not in text
    assert text == (
        f"# Benchmarks\n\n## Locust\n\nkept\n\n{SECTION}\n\nnew\n\n## Triton\n\nalso kept\n"
    )
