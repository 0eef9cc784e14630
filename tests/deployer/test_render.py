"""``helm template`` through the deployer, with Helm 3 and Helm 4.

Cases:
- the chart renders into plain dicts, each with apiVersion and kind, in Helm's order, the
  release name and values applied;
- the chart's own ``fail`` message comes back as a RenderError without helm's noise;
- a directory that is not a chart, and a helm that is not there, are RenderErrors saying
  what to pass;
- find_helm's order: the explicit path, then $HELM, then PATH;
- bad values are reported before a missing helm, which is looked for once they are good.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer import render
from deployer.cli import main
from deployer.errors import RenderError
from tests.conftest import CHART_DIR
from tests.deployer.conftest import SCHEMA, write_values


def test_the_chart_renders_into_dicts(helm: Path) -> None:
    objects = render.render(
        helm=helm,
        chart=CHART_DIR,
        release="r1",
        namespace="ns",
        values={"modelRepository": "gs://bucket/models", "server": {"logVerbose": 2}},
    )
    assert objects, "the chart renders something"
    assert all(isinstance(o, dict) and o["apiVersion"] and o["kind"] for o in objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "r1"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-verbose=2" in args


def test_a_chart_failure_is_a_render_error(helm: Path) -> None:
    with pytest.raises(RenderError) as caught:
        render.render(helm=helm, chart=CHART_DIR, release="r1", namespace="ns", values={})
    message = str(caught.value)
    assert "modelRepository is required" in message
    assert "Error: " not in message


def test_not_a_chart(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="not a Helm chart"):
        render.render(helm=helm, chart=tmp_path, release="r", namespace="n", values={})


def test_find_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert render.find_helm(str(fake), env={}) == fake
    assert render.find_helm(None, env={"HELM": str(fake)}) == fake
    with pytest.raises(RenderError, match="pass --helm PATH or set"):
        render.find_helm(str(tmp_path / "absent"), env={})
    monkeypatch.setattr(render, "DEFAULT_HELM", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert render.find_helm(None, env={}) == fake
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RenderError, match="helm not found"):
        render.find_helm(None, env={})


def test_bad_values_are_reported_before_a_missing_helm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the user wrote is checked first: with bad values and no helm, the values' error
    comes, then (values fixed) helm's."""
    absent = tmp_path / "no-helm"
    common = ["render", "--schema", str(SCHEMA), "--chart", str(CHART_DIR), "--helm", str(absent)]
    bad = write_values(tmp_path, modelRepository="s3://elsewhere/m")
    assert main([*common, "--values", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "modelRepository (Model repository): 's3://elsewhere/m' does not match" in err
    assert "helm not found" not in err
    good = write_values(tmp_path)
    assert main([*common, "--values", str(good)]) == 2
    assert f"helm not found at {absent}: pass --helm PATH or set $HELM" in capsys.readouterr().err
