"""Fixtures for the chart tests: the chart rendered once per helm binary and per values file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helpers import CI_VALUES_FILES, Manifest, render_chart


@pytest.fixture(scope="session")
def defaults(helm: Path) -> list[Manifest]:
    """The chart rendered with only a model repository set."""
    return render_chart(helm)


@pytest.fixture(scope="session", params=CI_VALUES_FILES, ids=lambda p: p.name)
def ci_values_file(request: pytest.FixtureRequest) -> Path:
    """Each chart/ci/*-values.yaml in turn."""
    path: Path = request.param
    return path
