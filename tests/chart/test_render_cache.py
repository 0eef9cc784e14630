"""The disk cache of `helm template` runs (tests/chart/render_cache.py): an input rendered once
is replayed, helm's refusals included; any change to what helm reads renders again; it can be
turned off; unused entries are pruned. helm is the real Helm 4, behind a script that counts its
runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.chart import render_cache

TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  greeting: {{ required "greeting is required: set it in the values" .Values.greeting | quote }}
"""


@pytest.fixture
def counted_helm(tmp_path: Path, helm4: Path) -> tuple[Path, Path]:
    """A ``helm`` that records each run in a file, then runs Helm 4; and that file."""
    runs = tmp_path / "runs"
    runs.touch()
    wrapper = tmp_path / "bin" / "helm"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho run >> "{runs}"\nexec "{helm4}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, runs


@pytest.fixture
def chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(render_cache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(render_cache.DISABLE_VARIABLE, raising=False)
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: small\nversion: 0.1.0\n")
    (chart / "templates" / "configmap.yaml").write_text(TEMPLATE)
    return chart


def _render(
    helm: Path, chart: Path, values: str, files: tuple[str, ...] = ()
) -> render_cache.HelmAnswer:
    return render_cache.template(str(helm), str(chart), "r", "ns", files, values, ())


def _runs(runs: Path) -> int:
    return len(runs.read_text().splitlines())


def test_an_input_rendered_once_is_replayed(counted_helm: tuple[Path, Path], chart: Path) -> None:
    helm, runs = counted_helm
    first = _render(helm, chart, '{"greeting": "hello"}')
    again = _render(helm, chart, '{"greeting": "hello"}')
    assert _runs(runs) == 1
    assert again == first
    assert 'greeting: "hello"' in first.stdout


def test_a_refusal_is_replayed_with_helms_message(
    counted_helm: tuple[Path, Path], chart: Path
) -> None:
    helm, runs = counted_helm
    answers = [_render(helm, chart, "{}") for _ in range(2)]
    assert _runs(runs) == 1
    for answer in answers:
        assert answer.returncode != 0
        assert "greeting is required: set it in the values" in answer.stderr


def test_any_change_to_what_helm_reads_renders_again(
    counted_helm: tuple[Path, Path], chart: Path, tmp_path: Path
) -> None:
    helm, runs = counted_helm
    values_file = tmp_path / "values.yaml"
    values_file.write_text("greeting: from-a-file\n")
    before = _render(helm, chart, "{}", (str(values_file),))
    values_file.write_text("greeting: edited\n")  # same path, new contents
    edited = _render(helm, chart, "{}", (str(values_file),))
    template = chart / "templates" / "configmap.yaml"
    template.write_text(TEMPLATE.replace("greeting:", "salute:", 1))
    retemplated = _render(helm, chart, "{}", (str(values_file),))
    other_values = _render(helm, chart, '{"greeting": "other"}', (str(values_file),))
    assert _runs(runs) == 4
    outputs = [a.stdout for a in (before, edited, retemplated, other_values)]
    assert "from-a-file" in outputs[0] and "edited" in outputs[1]
    assert "salute:" in outputs[2] and '"other"' in outputs[3]


def test_the_cache_can_be_turned_off(
    counted_helm: tuple[Path, Path], chart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helm, runs = counted_helm
    monkeypatch.setenv(render_cache.DISABLE_VARIABLE, "0")
    for _ in range(2):
        _render(helm, chart, '{"greeting": "hello"}')
    assert _runs(runs) == 2
    assert not render_cache.CACHE_DIR.exists()


def test_prune_removes_only_unused_entries_and_old_half_written_files(
    counted_helm: tuple[Path, Path], chart: Path
) -> None:
    helm, _ = counted_helm
    _render(helm, chart, '{"greeting": "used"}')
    _render(helm, chart, '{"greeting": "unused"}')
    entries = {"unused" in p.read_text(): p for p in render_cache.CACHE_DIR.iterdir()}
    used, unused = entries[False], entries[True]
    recent_tmp = render_cache.CACHE_DIR / "a.tmp"
    old_tmp = render_cache.CACHE_DIR / "b.tmp"
    recent_tmp.touch()
    old_tmp.touch()
    now = time.time()
    long_ago = now - render_cache.KEEP_UNUSED_S - 60
    os.utime(unused, (long_ago, long_ago))
    hour_ago = now - render_cache.KEEP_HALF_WRITTEN_S - 60
    os.utime(old_tmp, (hour_ago, hour_ago))
    # A hit marks its entry used: it survives although it was old.
    os.utime(used, (long_ago, long_ago))
    _render(helm, chart, '{"greeting": "used"}')
    assert render_cache.prune(now) == 2
    assert sorted(p.name for p in render_cache.CACHE_DIR.iterdir()) == sorted(
        [used.name, recent_tmp.name]
    )
