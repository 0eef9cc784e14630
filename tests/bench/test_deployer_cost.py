"""The deployer benchmark's plumbing (its figures come from `make bench-deployer`).

Cases:
- one run against the real control plane (kubelet stand-in) measures plan and apply, which add
  up to the total, and what it timed is the deployer's own deploy: the Application exists and
  owns the Deployment it applied after it;
- a fresh namespace per run is made and deleted when none is given;
- writing the Deployer section replaces only that section of docs/benchmarks.md, or adds it
  (and the file) when absent;
- the command, pointed at a cluster, prints a line a run and writes the section; a run count
  below one or a missing helm is refused before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.deployer_cost import SECTION, main, one_run, render_alone, section, write_section


def test_one_run_times_the_deployers_own_deploy(
    helm4: Path, control_plane: Any, kubelet: Any, k8s_namespace: str
) -> None:
    phases = one_run(helm=helm4, connect_api=control_plane.api_client, namespace=k8s_namespace)
    assert set(phases) == {"plan", "apply", "total"}
    assert all(seconds > 0 for seconds in phases.values())
    assert phases["plan"] + phases["apply"] == pytest.approx(phases["total"])
    api = control_plane.api_client()
    custom: Any = client.CustomObjectsApi(api)
    apps: Any = client.AppsV1Api(api)
    app = custom.get_namespaced_custom_object(
        "app.k8s.io", "v1beta1", k8s_namespace, "applications", "triton"
    )
    (deployment,) = apps.list_namespaced_deployment(k8s_namespace).items
    owners = [(o.kind, o.uid) for o in deployment.metadata.owner_references or []]
    assert owners == [("Application", app["metadata"]["uid"])]


def test_a_run_without_a_namespace_uses_its_own(
    helm4: Path, control_plane: Any, kubelet: Any
) -> None:
    core: Any = client.CoreV1Api(control_plane.api_client())
    before = {n.metadata.name for n in core.list_namespace().items}
    one_run(helm=helm4, connect_api=control_plane.api_client)
    namespaces = core.list_namespace().items
    made = [n for n in namespaces if n.metadata.name not in before]
    assert [n.metadata.name.startswith("bench-deployer-") for n in made] == [True]
    assert made[0].status.phase == "Terminating" or made[0].metadata.deletion_timestamp


def test_the_section_reports_the_ratios(helm4: Path) -> None:
    figures = {"plan": 0.3, "apply": 0.2, "total": 0.5, "render": render_alone(helm4)}
    text = section(figures, helm=helm4, runs=3)
    assert text.startswith(SECTION)
    assert "| total | 500 ms | 100% |" in text
    assert "total / 2 s target = 0.25" in text


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


def test_the_command_measures_a_cluster_and_writes_its_section(
    helm4: Path, control_plane: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "benchmarks.md"
    kubeconfig = str(control_plane.kubeconfig)
    args = ["--helm", str(helm4), "--runs", "1", "--kubeconfig", kubeconfig, "--write", str(doc)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "run 1/1: plan " in out
    assert doc.read_text().startswith(f"# Benchmarks\n\n{SECTION}\n")
    assert "| apply |" in doc.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "0"], "--runs must be 1 or more, not 0"),
        (["--helm", "/nonexistent/helm"], "--helm /nonexistent/helm: no such file"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    helm4: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--helm", str(helm4), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
