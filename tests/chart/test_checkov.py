"""checkov on the rendered chart: every failed check has a written reason here.

Cases: the defaults and every ci file, rendered into one folder and scanned in one checkov run;
each failed check is in SKIPS with its reason; no reason in SKIPS is stale (a check listed but
never failing must be removed, so the list stays honest).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.chart.helpers import CI_VALUES_FILES
from tests.conftest import CHART_DIR, HELM4, ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

TRITON, STANDBY, HELM_TEST = "triton", "standby placeholder", "helm test pod"
PERF_ANALYZER = "perf_analyzer test Job"

SKIPS: dict[tuple[str, str], str] = {
    ("CKV_K8S_11", TRITON): (
        "No CPU limit on Triton: a CFS quota throttles its request threads and adds tail "
        "latency; the CPU request reserves what it needs."
    ),
    ("CKV_K8S_11", STANDBY): (
        "Placeholders mirror Triton's requests and limits, so a preempted one frees exactly "
        "the room a Triton pod needs; pause uses no CPU."
    ),
    ("CKV_K8S_15", TRITON): (
        "imagePullPolicy IfNotPresent: images are pinned by tag or `image.digest`, and "
        "Always adds a registry round-trip to every scale-out of a multi-GB image."
    ),
    ("CKV_K8S_15", STANDBY): "pause is pinned by tag; IfNotPresent avoids a registry call.",
    ("CKV_K8S_15", HELM_TEST): "curl is pinned by tag; IfNotPresent avoids a registry call.",
    ("CKV_K8S_43", TRITON): (
        "Digest pinning is a value (`image.digest`); the default is the readable NGC tag "
        "that matches Chart.yaml's appVersion."
    ),
    ("CKV_K8S_43", STANDBY): "registry.k8s.io/pause is pinned by its release tag.",
    ("CKV_K8S_43", HELM_TEST): "curlimages/curl is pinned by its release tag.",
    ("CKV_K8S_40", TRITON): (
        "The NGC Triton image's user is uid 1000 (triton-server), which owns its files; "
        "runAsNonRoot with a fixed uid still holds."
    ),
    ("CKV_K8S_8", STANDBY): "pause does nothing: a liveness probe has nothing to watch.",
    ("CKV_K8S_9", STANDBY): "Placeholders serve no traffic: no Service selects them.",
    ("CKV_K8S_8", HELM_TEST): "The test pod runs curl once: a liveness probe has nothing to watch.",
    ("CKV_K8S_9", HELM_TEST): "The test pod runs curl once: it serves no traffic.",
    ("CKV_K8S_11", PERF_ANALYZER): (
        "No CPU limit on the load generator: a throttled client measures its own throttling "
        "instead of the server."
    ),
    (
        "CKV_K8S_15",
        PERF_ANALYZER,
    ): "The SDK image is pinned by tag; IfNotPresent avoids a registry call.",
    ("CKV_K8S_43", PERF_ANALYZER): "The SDK image's tag follows the server's NGC release tag.",
    ("CKV_K8S_35", PERF_ANALYZER): (
        "perf_analyzer takes HTTP headers only as arguments (-H): the key comes from the "
        "release's Secret through an environment variable the kubelet expands there."
    ),
    ("CKV_K8S_35", TRITON): (
        "The restricted-API key reaches Triton as an environment variable from its Secret "
        "because the kubelet expands $(VAR) in arguments only from the environment, and Triton "
        "reads the key only from its arguments. It never appears in the rendered manifests."
    ),
}


def role(resource: str) -> str:
    """Which of the chart's pods a checkov resource id (`Kind.namespace.name...`) is."""
    name = resource.split(".")[2]
    if name.endswith("-standby"):
        return STANDBY
    if name.endswith("-test-ready"):
        return HELM_TEST
    if name.endswith("-perf-analyzer"):
        return PERF_ANALYZER
    return TRITON


@pytest.fixture(scope="module")
def failed_checks(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(check id, role) of every failed check on the rendered ci files."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make tools`")
    folder = tmp_path_factory.mktemp("rendered")
    helm = HELM4
    for index, values in enumerate(CI_VALUES_FILES):
        rendered = subprocess.run(
            [str(helm), "template", "triton", str(CHART_DIR), "-n", "serving", "-f", str(values)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (folder / f"{index:02d}-{values.stem}.yaml").write_text(rendered)
    result = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", "kubernetes", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {
        (check["check_id"], role(check["resource"]))
        for report in reports
        for check in report["results"]["failed_checks"]
    }


def test_every_failed_check_has_a_reason(failed_checks: set[tuple[str, str]]) -> None:
    unexplained = sorted(f"{cid} on the {who}" for cid, who in failed_checks - set(SKIPS))
    assert not unexplained, "checkov failures with no reason in SKIPS:\n" + "\n".join(unexplained)


def test_no_stale_reason(failed_checks: set[tuple[str, str]]) -> None:
    stale = set(SKIPS) - failed_checks
    assert not stale, f"remove from SKIPS, these checks pass now: {sorted(stale)}"
