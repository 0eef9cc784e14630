"""perf_analyzer's `helm test` Job (templates/tests/perf-analyzer.yaml), rendered with both helms.

Cases: off by default; when on, its ConfigMap and Job are test hooks, which a deploy never
applies; the SDK image is the one of the server's NGC release, whatever the server's tag or
flavour (a republished `0.1.0` included), or is set; it targets this release's Service
with the sample's inputs, every short option's value a separate argument (getopt would keep an
"="); it sends the restricted-API header with the key from the release's Secret (the chart's own
or an existing one) and nothing when the restriction is off; its pod carries the test pod's
labels, which Triton's NetworkPolicy admits; the inputs file is what the sample's generator
writes, and what the ConfigMap carries; on the real control plane, `helm test` with the filter
the NOTES print runs the Job in a namespace that enforces "restricted" (admitted, scheduled,
the key from the release's Secret) and it completes (the kubelet stand-in ends its pod).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from deployer.objects import split_hooks
from scripts.perf_analyzer_inputs import DEFAULT_OUT, inputs_document
from standins.kube.control_plane import ControlPlane
from standins.kube.kubelet import KubeletStandIn
from tests.chart.cluster import helm_run, install
from tests.chart.helpers import CHART_RELEASE, Manifest, field, only, render_chart
from tests.conftest import CHART_DIR

ON: dict[str, Any] = {"modelRepository": "gs://bucket/models", "perfAnalyzer": {"enabled": True}}
NAME = "triton-triton-inference-server-perf-analyzer"


def job(manifests: list[Manifest]) -> Manifest:
    return only(manifests, "Job", "-perf-analyzer")


def container(manifests: list[Manifest]) -> Manifest:
    found: Manifest = field(job(manifests), "spec.template.spec.containers[name=perf-analyzer]")
    return found


def test_off_by_default(helm: Path) -> None:
    names = [m["metadata"]["name"] for m in render_chart(helm)]
    assert not [n for n in names if n.endswith("-perf-analyzer")]


def test_only_helm_test_runs_it(helm: Path) -> None:
    manifests = render_chart(helm, ON)
    regular, tests = split_hooks(manifests)
    assert {(m["kind"], m["metadata"]["name"]) for m in tests} >= {
        ("Job", NAME),
        ("ConfigMap", NAME),
    }
    assert not [m for m in regular if m["metadata"]["name"] == NAME]
    assert (
        only(manifests, "ConfigMap", "-perf-analyzer")["metadata"]["annotations"][
            "helm.sh/hook-weight"
        ]
        == "-1"
    ), "the inputs exist before the Job starts"


def test_sdk_image_is_the_servers_release(helm: Path) -> None:
    image = container(render_chart(helm, {**ON, "image": {"release": "25.01"}}))["image"]
    assert image == "nvcr.io/nvidia/tritonserver:25.01-py3-sdk"
    flavored = {**ON, "image": {"release": "25.01", "flavor": "pyt-python-py3"}}
    assert container(render_chart(helm, flavored))["image"].endswith(":25.01-py3-sdk")
    republished = {**ON, "image": {"registry": "gcr.io", "repository": "p/t", "tag": "0.1.0"}}
    sdk = container(render_chart(helm, republished))["image"]
    assert sdk == f"nvcr.io/nvidia/tritonserver:{CHART_RELEASE}-py3-sdk"
    pinned = {**ON, "perfAnalyzer": {"enabled": True, "image": {"tag": "24.12-py3-sdk"}}}
    assert container(render_chart(helm, pinned))["image"].endswith(":24.12-py3-sdk")


def test_targets_this_release_with_the_samples_inputs(helm: Path) -> None:
    values = {**ON, "perfAnalyzer": {"enabled": True, "concurrencyRange": "8:64:8"}}
    args = container(render_chart(helm, values))["args"]
    pairs = dict(itertools.pairwise(args))
    assert pairs["-m"] == "bert" and pairs["-i"] == "http" and pairs["-b"] == "1"
    assert pairs["-u"] == "triton-triton-inference-server.serving.svc:8000"
    assert "--concurrency-range=8:64:8" in args
    assert "--input-data=/inputs/inputs.json" in args
    assert not [a for a in args if a.startswith("-") and not a.startswith("--") and "=" in a]


def test_sends_the_key_from_the_releases_secret(helm: Path) -> None:
    manifests = render_chart(helm, ON)
    args = container(manifests)["args"]
    assert args[args.index("-H") + 1] == "triton-admin-key:$(TRITON_ADMIN_KEY)"
    (env,) = container(manifests)["env"]
    assert env["name"] == "TRITON_ADMIN_KEY"
    secret = only(manifests, "Secret", "-admin-key")["metadata"]["name"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "admin-key"}
    existing = {
        **ON,
        "security": {
            "restrictedApi": {"existingSecret": "keys", "secretKey": "k", "header": "x-key"}
        },
    }
    other = container(render_chart(helm, existing))
    assert other["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": "k"}
    assert "x-key:$(TRITON_ADMIN_KEY)" in other["args"]
    open_api = container(
        render_chart(helm, {**ON, "security": {"restrictedApi": {"enabled": False}}})
    )
    assert "-H" not in open_api["args"] and "env" not in open_api


def test_triton_admits_its_pod(helm: Path) -> None:
    manifests = render_chart(helm, ON)
    labels = job(manifests)["spec"]["template"]["metadata"]["labels"]
    policy = only(manifests, "NetworkPolicy", "triton-inference-server")
    selectors = [
        peer["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "podSelector" in peer
    ]
    assert any(selector.items() <= labels.items() for selector in selectors)


def test_inputs_are_the_samples_and_reach_the_configmap(helm: Path) -> None:
    assert DEFAULT_OUT.read_text() == inputs_document(), (
        "chart/files/perf-analyzer-inputs.json is stale: run `make perf-analyzer-inputs`"
    )
    carried = only(render_chart(helm, ON), "ConfigMap", "-perf-analyzer")["data"]["inputs.json"]
    entries = json.loads(carried)["data"]
    assert len(entries) == 16
    for entry in entries:
        assert set(entry) == {"input_ids", "segment_ids", "input_mask"}
        assert all(tensor["shape"] == [128] for tensor in entry.values())
        assert entry["input_ids"]["content"][0] == 101  # [CLS]


@pytest.mark.slow
def test_helm_test_runs_it_in_a_restricted_namespace(
    helm: Path, control_plane: ControlPlane, kubelet: KubeletStandIn, k8s_namespace: str
) -> None:
    values = CHART_DIR / "ci" / "60-perf-analyzer-values.yaml"
    result = install(helm, control_plane, k8s_namespace, values_files=[values])
    job_name = "r-triton-inference-server-perf-analyzer"
    assert f"--filter name={job_name}" in result.stdout, "NOTES give the command"
    helm_run(
        helm, control_plane, "test", "r", "-n", k8s_namespace,
        f"--filter=name={job_name}", "--timeout=120s",
    )  # fmt: skip
    batch: Any = client.BatchV1Api(control_plane.api_client())
    core: Any = client.CoreV1Api(control_plane.api_client())
    finished = batch.read_namespaced_job(job_name, k8s_namespace)
    assert finished.status.succeeded == 1
    (pod,) = core.list_namespaced_pod(
        k8s_namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}"
    ).items
    # Admitted under "restricted", placed by the scheduler, with the key from the Secret.
    assert pod.spec.node_name
    (env,) = pod.spec.containers[0].env
    assert env.value_from.secret_key_ref.name == "r-triton-inference-server-admin-key"
