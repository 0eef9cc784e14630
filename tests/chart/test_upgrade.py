"""Upgrading from the previous release (the baseline: ``tests/chart/fixtures/baseline.yaml``) to
this one, both installed from the registry `make release` published them to, on the real
Kubernetes 1.36 control plane.

Cases:
- the matrix: every ci file of the baseline (from its own package: the values a user of that
  release has), with Helm 3 and with Helm 4: `helm install` of the baseline with it, then
  `helm upgrade` to this release with the same file and ``--verify`` against the release key.
  The upgrade succeeds (no immutable field changed: selectors, Service ports, Job specs), is
  revision 2, deployed at this release's version; every object of the release is kept in place
  (same uid: updated, never deleted and created again) or is a change ``baseline.yaml``
  documents; every Secret keeps its data (the restricted-API key among them); every selector
  and Service port is unchanged. The cells run at once, each in a namespace of its own
  (Pod Security "restricted"), without ``--wait`` (the objects are what they read); one test
  per cell reads its outcome;
- values carried over: ``--reuse-values`` keeps the baseline's defaults too (the old default
  Triton stays), ``--reset-then-reuse-values`` takes this release's defaults and keeps the
  values the user set, as the README says;
- the README's own commands, with Helm 3 and with Helm 4 as ``helm``: its install of the
  baseline from the registry (values file, `kubectl rollout status`, `helm test`), then its
  upgrade to this release (the pods roll to the new Triton) and its rollback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from tests import baseline
from tests.baseline import VERSION as BASELINE_VERSION
from tests.baseline import Snapshot, compare
from tests.chart.cluster import create_presupposed, presupposed, register_node_pools
from tests.chart.helpers import render_chart
from tests.chart.releases import CHART_NAME, VERSION, Published
from tests.conftest import CHART_DIR, HELM_BINARIES, ROOT, helm_path

pytestmark = pytest.mark.slow

BASELINE_FILES = baseline.ci_files()
HELMS = tuple(sorted(HELM_BINARIES))
WORKERS = 6
"""Cells upgrading at once: enough to overlap helm's waits on the API server, few enough for
a two-core runner."""


def restricted_namespace(plane: ControlPlane, name: str) -> str:
    """A namespace whose pods must meet Pod Security "restricted"."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core: Any = client.CoreV1Api(plane.api_client())
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def helm_error(done: subprocess.CompletedProcess[str]) -> str:
    """helm's ``Error:`` lines (its progress lines left out), or all it wrote to stderr."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    return "\n".join(errors) or done.stderr.strip()


def snapshot(plane: ControlPlane, namespace: str, manifest: str) -> Snapshot:
    """The live objects of a release's ``manifest`` (as helm recorded it)."""
    listed = plane.run_kubectl("get", "-f", "-", "-n", namespace, "-o", "json", stdin=manifest)
    document = json.loads(listed.stdout)
    return baseline.snapshot(document["items"] if document.get("kind") == "List" else [document])


def run_helm(
    binary: Path, plane: ControlPlane, env: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(env),
        check=False,
    )


# -- the matrix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    ci_file: str
    helm: str

    @property
    def id(self) -> str:
        return f"{self.helm}-{self.ci_file}"


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    install_s: float = 0.0
    upgrade_s: float = 0.0


def run_cell_safely(cell: Cell, index: int, **kwargs: Any) -> Outcome:
    """:func:`run_cell`, with anything it raises as the cell's problem, so one broken cell
    never hides the others' outcomes."""
    try:
        return run_cell(cell, index, **kwargs)
    except Exception as exc:  # reported as the cell's outcome
        return Outcome(problems=[f"{type(exc).__name__}: {exc}"])


def run_cell(
    cell: Cell,
    index: int,
    *,
    plane: ControlPlane,
    published: Published,
    baseline_chart: Path,
    work: Path,
) -> Outcome:
    """Install the baseline with ``cell``'s file, upgrade to this release, compare."""
    outcome = Outcome()
    binary = helm_path(cell.helm)
    env = published.helm_env(work / f"helm-{index}")
    release = f"u{index}"
    namespace = restricted_namespace(plane, f"upgrade-{index}-{os.getpid() % 10000}")
    values = baseline_chart / "ci" / cell.ci_file
    create_presupposed(plane, namespace, presupposed(values))

    common = ["-n", namespace, "-f", str(values), "-o", "json"]
    started = time.monotonic()
    installed = run_helm(
        binary, plane, env, "install", release, published.chart,
        "--version", BASELINE_VERSION, *common,
    )  # fmt: skip
    outcome.install_s = time.monotonic() - started
    if installed.returncode != 0:
        outcome.problems.append(f"install of {BASELINE_VERSION}: {helm_error(installed)}")
        return outcome
    before = snapshot(plane, namespace, json.loads(installed.stdout)["manifest"])

    started = time.monotonic()
    upgraded = run_helm(
        binary, plane, env, "upgrade", release, published.chart, "--version", VERSION,
        "--verify", "--keyring", str(published.keyring.public), *common,
    )  # fmt: skip
    outcome.upgrade_s = time.monotonic() - started
    if upgraded.returncode != 0:
        outcome.problems.append(f"upgrade to {VERSION}: {helm_error(upgraded)}")
        return outcome
    revision = json.loads(upgraded.stdout)
    said = (revision["version"], revision["info"]["status"], revision["chart"]["metadata"])
    if said[:2] != (2, "deployed") or said[2]["version"] != VERSION:
        outcome.problems.append(f"the upgrade is revision {said[0]}, {said[1]}, of {said[2]}")
    after = snapshot(plane, namespace, revision["manifest"])
    outcome.objects = len(after.objects)
    fullname = f"{release}-{CHART_NAME}"
    outcome.problems += compare(before, after, ci_file=cell.ci_file, fullname=fullname)

    if any(not o["metadata"].get("namespace") for o in after.objects.values()):
        # Cluster-wide objects (a PriorityClass) outlive the namespace: uninstall them.
        removed = run_helm(binary, plane, env, "uninstall", release, "-n", namespace)
        if removed.returncode != 0:
            outcome.problems.append(f"uninstall: {helm_error(removed)}")
    with_namespace_gone(plane, namespace)
    return outcome


def with_namespace_gone(plane: ControlPlane, namespace: str) -> None:
    """Delete the cell's namespace (not waited for: the namespace controller finishes it)."""
    core: Any = client.CoreV1Api(plane.api_client())
    core.delete_namespace(namespace)


CELLS = [Cell(ci_file, helm_name) for ci_file in BASELINE_FILES for helm_name in HELMS]


@pytest.fixture(scope="module")
def baseline_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline's chart, unpacked: its ci files are the values its users have."""
    return baseline.extract_chart(tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="module")
def upgrade_matrix(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    published_releases: Published,
    baseline_chart: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[Cell, Outcome]:
    """Every cell this session selected, run at once; prints a table of the outcomes."""
    wanted = [
        cell
        for item in request.session.items
        if isinstance(item, pytest.Function) and hasattr(item, "callspec")
        for cell in [item.callspec.params.get("cell")]
        if isinstance(cell, Cell)
    ]
    work = tmp_path_factory.mktemp("upgrades")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {
            cell: pool.submit(
                run_cell_safely,
                cell,
                index,
                plane=control_plane,
                published=published_releases,
                baseline_chart=baseline_chart,
                work=work,
            )
            for index, cell in enumerate(wanted)
        }
        outcomes = {cell: future.result() for cell, future in futures.items()}
    took = time.monotonic() - started
    lines = [f"upgrade {BASELINE_VERSION} -> {VERSION}: {len(outcomes)} cells in {took:.0f} s"]
    for cell, outcome in outcomes.items():
        verdict = "ok" if not outcome.problems else f"FAILED: {outcome.problems[0][:120]}"
        lines.append(
            f"  {cell.ci_file:42} {cell.helm}  {outcome.objects:3} objects  install "
            f"{outcome.install_s:5.1f} s  upgrade {outcome.upgrade_s:5.1f} s  {verdict}"
        )
    (work / "matrix.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return outcomes


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_upgrade_from_the_previous_release(cell: Cell, upgrade_matrix: dict[Cell, Outcome]) -> None:
    outcome = upgrade_matrix[cell]
    assert not outcome.problems, "\n".join(outcome.problems)
    assert outcome.objects > 0


# -- values carried over ------------------------------------------------------------------------


def _slug(helm: Path) -> str:
    """``helm-v3-19-0`` for ``.tools/helm-v3.19.0/helm``: a name part for namespaces."""
    return re.sub(r"[^a-z0-9]+", "-", helm.parent.name.lower()).strip("-")


def _triton_image(plane: ControlPlane, namespace: str, release: str) -> str:
    apps: Any = client.AppsV1Api(plane.api_client())
    deployment = apps.read_namespaced_deployment(f"{release}-{CHART_NAME}", namespace)
    image: str = deployment.spec.template.spec.containers[0].image
    return image


def _default_image(helm: Path, chart: Path) -> str:
    """The Triton image ``chart`` deploys by default, as the chart itself derives it."""
    (deployment,) = render_chart(helm, chart=chart, show_only=["Deployment"])
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_reused_values_and_reset_then_reused_values(
    helm: Path,
    control_plane: ControlPlane,
    published_releases: Published,
    baseline_chart: Path,
    tmp_path: Path,
) -> None:
    env = published_releases.helm_env(tmp_path / "helm")
    old_image = _default_image(helm, baseline_chart)
    new_image = _default_image(helm, CHART_DIR)
    assert old_image != new_image, "the test needs a release that changed the default Triton"
    for flag in ("--reuse-values", "--reset-then-reuse-values"):
        namespace = restricted_namespace(control_plane, f"{_slug(helm)}-{flag[2:7]}")
        release = "kept"
        helm_args = ["-n", namespace]
        installed = run_helm(
            helm, control_plane, env, "install", release, published_releases.chart,
            "--version", BASELINE_VERSION, "--set", "modelRepository=gs://kept-bucket/m",
            *helm_args,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
        upgraded = run_helm(
            helm, control_plane, env, "upgrade", release, published_releases.chart,
            "--version", VERSION, flag, *helm_args,
        )  # fmt: skip
        if flag == "--reuse-values":
            # The previous defaults pinned image.tag: kept, it would leave the old Triton in
            # place, so the chart refuses before anything changes and names the right flag.
            assert upgraded.returncode != 0, upgraded.stdout
            assert "upgrade with --reset-then-reuse-values instead" in upgraded.stderr
            assert _triton_image(control_plane, namespace, release) == old_image, flag
        else:
            assert upgraded.returncode == 0, upgraded.stderr
            assert _triton_image(control_plane, namespace, release) == new_image, flag
        given = run_helm(helm, control_plane, env, "get", "values", release, *helm_args, "-o=json")
        assert json.loads(given.stdout) == {"modelRepository": "gs://kept-bucket/m"}, flag
        with_namespace_gone(control_plane, namespace)


# -- the README's commands ----------------------------------------------------------------------

README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_block(language: str, contains: str) -> str:
    """The README's one fenced ``language`` block that holds ``contains``."""
    found = [
        body
        for lang, body in _FENCE.findall(README.read_text())
        if lang == language and contains in body
    ]
    assert len(found) == 1, f"README.md: {len(found)} {language} blocks hold {contains!r}"
    return str(found[0])


@pytest.fixture(scope="module")
def readme_pool(kubelet: KubeletStandIn) -> Iterator[str]:
    """L4 nodes of this module's own for the README's two replicas, their surge included."""
    register_node_pools(kubelet)
    name = kubelet.add_node("readme-l4", accelerator="nvidia-l4", gpus=8, cpu="64", memory="256Gi")
    try:
        yield name
    finally:
        kubelet.remove_node(name)


def _bash(script: str, *, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(env),
        cwd=cwd,
        check=False,
    )


def _lines_starting(block: str, *starts: str) -> Sequence[str]:
    """The commands of ``block`` (a line and its ``\\`` continuations) that start so."""
    commands = re.split(r"(?<!\\)\n", block.strip())
    return [c for c in commands if c.startswith(starts)]


@pytest.mark.usefixtures("readme_pool")
def test_the_readme_installs_the_previous_release_and_upgrades(
    helm: Path,
    control_plane: ControlPlane,
    published_releases: Published,
    baseline_chart: Path,
    tmp_path: Path,
) -> None:
    """The README's blocks as written, ``helm`` and ``kubectl`` on PATH, ``REGISTRY`` and
    ``NAMESPACE`` set as the README asks; ``VERSION`` first set to the previous release (a user
    who installed it), then to the README's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").symlink_to(helm)
    (bin_dir / "kubectl").symlink_to(control_plane.kubectl)
    namespace = f"readme-{_slug(helm)}"
    env = {
        **published_releases.helm_env(tmp_path / "helm"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KUBECONFIG": str(control_plane.kubeconfig),
        "REGISTRY": published_releases.registry.host,
        "NAMESPACE": namespace,
    }
    values = readme_block("yaml", "# triton-values.yaml")
    (tmp_path / "triton-values.yaml").write_text(values)
    which = readme_block("bash", "export CHART=")
    install = readme_block("bash", 'helm install triton "$CHART"')
    upgrade, rollback = _lines_starting(
        readme_block("bash", "helm rollback triton"), "helm upgrade", "helm rollback"
    )
    chart_line = next(line for line in which.splitlines() if line.startswith("export CHART="))
    readme_version = chart_line.rpartition("VERSION=")[2]
    assert readme_version == VERSION, "make version VERSION=... writes the README's line"

    first = _bash(f"{which}\nVERSION={BASELINE_VERSION}\n{install}", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Phase:          Succeeded" in first.stdout, "helm test passed"
    deployment = "triton-triton-inference-server"
    before = _triton_image(control_plane, namespace, "triton")
    assert before == _default_image(helm, baseline_chart), before

    rollout = f"kubectl -n {shlex.quote(namespace)} rollout status deployment/{deployment}"
    second = _bash(f"{chart_line}\n{upgrade}\n{rollout} --timeout=120s", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    after = _triton_image(control_plane, namespace, "triton")
    assert after == _default_image(helm, CHART_DIR), after
    apps: Any = client.AppsV1Api(control_plane.api_client())
    rolled = apps.read_namespaced_deployment(deployment, namespace)
    assert rolled.status.updated_replicas == rolled.status.ready_replicas == 2

    third = _bash(f"{chart_line}\n{rollback}\n{rollout} --timeout=120s", env=env, cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert _triton_image(control_plane, namespace, "triton") == before
    history = json.loads(
        _bash(f"helm history triton -n {namespace} -o json", env=env, cwd=tmp_path).stdout
    )
    charts = [(h["revision"], h["chart"], h["status"]) for h in history]
    assert charts == [
        (1, f"{CHART_NAME}-{BASELINE_VERSION}", "superseded"),
        (2, f"{CHART_NAME}-{VERSION}", "superseded"),
        (3, f"{CHART_NAME}-{BASELINE_VERSION}", "deployed"),
    ]
    wait_until(
        "the rollback's pods ready",
        lambda: apps.read_namespaced_deployment(deployment, namespace).status.ready_replicas == 2,
    )
    with_namespace_gone(control_plane, namespace)
