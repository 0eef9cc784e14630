"""The deployer on the real Kubernetes 1.36 control plane (standins/kube), as its own
ServiceAccount: a real token (TokenRequest API) bound to exactly the Role of
``deployer/rbac.yaml`` (a test keeps it equal to schema.yaml's), never admin, in a namespace
where Pod Security "restricted" is enforced, on GKE-shaped GPU nodes played by the stand-in.

Cases:
- status before a deploy (exit 1, not found), deploy, a second deploy, status, verify
  --keep-app, delete, a second delete: the Application goes Pending then Success during the
  deploy and stays Success; the deploy applies what ``helm template`` renders, under the
  deployer's field manager; the second deploy changes no object of the chart (same
  resourceVersions; the restricted-API key kept, not redrawn); Triton runs on an nvidia-l4
  node, admitted by Pod Security; verify's tester pod Succeeded and says so (SMOKE_TEST);
  delete goes in reverse apply order, the Application last, and leaves nothing;
- deleting the Application (as mpdev does) has the real garbage collector remove every object
  it owns;
- a pod that never becomes Ready: exit 1 before the deadline, the Deployment and the reason
  named, the Application Failed (NotReady);
- objects the API server rejects (a ResourceQuota that allows no Service and no Secret): exit
  1, both errors listed, the Application Failed (ApplyFailed), and every object in the
  namespace is one the output says was applied;
- no node with the chosen accelerator: the pod stays Pending and the timeout names the
  scheduler's reason (the pod's PodScheduled condition and its FailedScheduling event);
- the startup budget on the real controller manager, scaled down: with a pod that gets ready
  after 10 s, a 20 s progress deadline over a 15 s startup budget deploys, with the deadline
  the deployer took from it; a progress deadline below the startup budget is refused at
  render (exit 2, nothing sent); a progress deadline that the pod overruns ends the deploy
  with the controller's own ProgressDeadlineExceeded, long before the deployer's deadline.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deployer import values
from deployer.cli import main
from deployer.cluster import FIELD_MANAGER
from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from standins.kube.nodes import GKE_ACCELERATOR
from tests.conftest import CHART_DIR, HELM_BINARIES, ROOT
from tests.deployer.conftest import SCHEMA

pytestmark = pytest.mark.slow

RELEASE = "triton"
TRITON = f"{RELEASE}-triton-inference-server"
RBAC = ROOT / "deployer" / "rbac.yaml"
DEPLOYER_ACCOUNT = "triton-deployer"
HELM4 = HELM_BINARIES["helm4"][1]
SLACK_S = 5.0
"""How far past its deadline a command may end on a busy runner."""


@pytest.fixture(scope="module")
def gpu_pool(kubelet: KubeletStandIn) -> Iterator[str]:
    """An nvidia-l4 node of this module's own, with room for every Triton pod it starts (16
    GiB each), pods of earlier tests' namespaces still going included."""
    node = kubelet.add_node(
        "deployer-l4-1", accelerator="nvidia-l4", gpus=16, cpu="128", memory="512Gi"
    )
    try:
        yield node
    finally:
        kubelet.remove_node(node)


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float


@dataclass
class Deployer:
    """The deployer's command line, run as its own ServiceAccount in one namespace."""

    plane: ControlPlane
    namespace: str
    kubeconfig: Path
    workdir: Path
    capsys: pytest.CaptureFixture[str]

    def values(self, **values: object) -> Path:
        path = self.workdir / "values.yaml"
        document = {
            "name": RELEASE,
            "namespace": self.namespace,
            "modelRepository": "gs://bucket/models",
            **values,
        }
        path.write_text(yaml.safe_dump(document))
        return path

    def run(
        self, command: str, *extra: str, values: Path | None = None, chart: Path = CHART_DIR
    ) -> Result:
        argv = [
            command,
            "--values",
            str(values or self.values()),
            "--schema",
            str(SCHEMA),
            "--chart",
            str(chart),
            "--helm",
            str(HELM4),
            "--kubeconfig",
            str(self.kubeconfig),
            "--poll-interval",
            "0.2",
            *extra,
        ]
        self.capsys.readouterr()
        started = time.monotonic()
        code = main(argv)
        seconds = time.monotonic() - started
        captured = self.capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err, seconds=seconds)

    # -- what the cluster holds, read as admin --------------------------------------------

    def application(self) -> dict[str, Any] | None:
        custom: Any = client.CustomObjectsApi(self.plane.api_client())
        try:
            found: dict[str, Any] = custom.get_namespaced_custom_object(
                "app.k8s.io", "v1beta1", self.namespace, "applications", RELEASE
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def phase(self) -> str | None:
        app = self.application()
        return None if app is None else str(app["spec"].get("assemblyPhase"))

    def condition(self) -> dict[str, Any]:
        app = self.application()
        assert app is not None
        (ready,) = [c for c in app["status"]["conditions"] if c["type"] == "Ready"]
        return dict(ready)

    def objects(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every object of the release in the namespace (its instance label: the deployer's
        own RBAC and what the cluster puts in every namespace left out), by (kind, name), of
        the kinds the chart renders and the pods and ReplicaSets made for them."""
        listed = self.plane.run_kubectl(
            "get",
            "applications.app.k8s.io,deployments,replicasets,pods,services,secrets,"
            "serviceaccounts,configmaps,networkpolicies,poddisruptionbudgets,"
            "horizontalpodautoscalers",
            "-n",
            self.namespace,
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "yaml",
            "--show-managed-fields",
        )
        items = yaml.safe_load(listed.stdout)["items"]
        return {(o["kind"], o["metadata"]["name"]): o for o in items}


@pytest.fixture
def deployer(
    control_plane: ControlPlane,
    k8s_namespace: str,
    gpu_pool: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Deployer:
    """The deployer's ServiceAccount and Role (deployer/rbac.yaml) in a fresh restricted
    namespace, and its command line authenticated as that account."""
    control_plane.run_kubectl("apply", "-n", k8s_namespace, "-f", str(RBAC))
    kubeconfig = control_plane.kubeconfig_for(k8s_namespace, DEPLOYER_ACCOUNT)
    return Deployer(control_plane, k8s_namespace, kubeconfig, tmp_path, capsys)


def watch_phases(deployer: Deployer) -> tuple[list[str | None], Callable[[], None]]:
    """The Application's phases in the order they were seen, polled until ``stop()``."""
    seen: list[str | None] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            phase = deployer.phase()
            if not seen or seen[-1] != phase:
                seen.append(phase)
            time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(timeout=10)
        if seen[-1] != (final := deployer.phase()):
            seen.append(final)

    return seen, stop


def chart_versions(deployer: Deployer) -> dict[tuple[str, str], str]:
    """resourceVersion of each object the chart renders (not the Application, whose phase
    every deploy writes, nor the pods and ReplicaSets the controllers own)."""
    return {
        key: obj["metadata"]["resourceVersion"]
        for key, obj in deployer.objects().items()
        if key[0] not in ("Application", "Pod", "ReplicaSet")
    }


def helm_template(deployer: Deployer) -> set[tuple[str, str]]:
    """(kind, name) of every object ``helm template`` renders for the values, as the schema
    resolves them, test hooks left out."""
    document = yaml.safe_load(deployer.values().read_text())
    resolved = values.resolve(values.load_schema(SCHEMA, chart=CHART_DIR), document)
    values_file = deployer.workdir / "chart-values.yaml"
    values_file.write_text(yaml.safe_dump(resolved.chart_values))
    command = [str(HELM4), "template", RELEASE, str(CHART_DIR), "-n", deployer.namespace]
    rendered = subprocess.run(
        [*command, "-f", str(values_file)], check=True, capture_output=True, text=True
    ).stdout
    return {
        (d["kind"], d["metadata"]["name"])
        for d in yaml.safe_load_all(rendered)
        if d and "helm.sh/hook" not in (d["metadata"].get("annotations") or {})
    }


def test_every_verb_as_the_deployers_own_service_account(deployer: Deployer) -> None:
    missing = deployer.run("status", "--timeout", "30")
    assert missing.code == 1
    assert f"Deployment/{TRITON}: not found" in missing.out

    phases, stop = watch_phases(deployer)
    first = deployer.run("deploy", "--timeout", "120")
    stop()
    assert first.code == 0, first.err
    assert [p for p in phases if p] == ["Pending", "Success"], phases
    live = deployer.objects()
    made_by_controllers = ("Pod", "ReplicaSet")
    assert {k for k in live if k[0] not in made_by_controllers} == helm_template(deployer)
    for key, obj in live.items():
        if key[0] in made_by_controllers:
            continue
        appliers = {
            m["manager"] for m in obj["metadata"]["managedFields"] if m["operation"] == "Apply"
        }
        assert appliers == {FIELD_MANAGER}, key
    triton_pods = [
        o for (kind, _), o in deployer.objects().items() if kind == "Pod" and TRITON in str(o)
    ]
    assert triton_pods and all(p["status"]["phase"] == "Running" for p in triton_pods)
    core: Any = client.CoreV1Api(deployer.plane.api_client())
    for pod in triton_pods:
        node = core.read_node(pod["spec"]["nodeName"])
        assert node.metadata.labels[GKE_ACCELERATOR] == "nvidia-l4"

    before = chart_versions(deployer)
    assert len(before) >= 5, sorted(before)
    second = deployer.run("deploy", "--timeout", "120")
    assert second.code == 0, second.err
    assert chart_versions(deployer) == before, "a second deploy changes nothing"
    assert deployer.phase() == "Success"
    # The restricted-API key is drawn anew at each render, and kept: created once.
    assert f"applied Secret/{TRITON}-admin-key" in first.out
    assert f"kept Secret/{TRITON}-admin-key" in second.out

    status = deployer.run("status", "--timeout", "30")
    assert status.code == 0, status.err
    assert f"Application/{RELEASE}: phase Success" in status.out
    assert f"Deployment/{TRITON}: 1/1 replicas available" in status.out

    verify = deployer.run("verify", "--keep-app", "--timeout", "120")
    assert verify.code == 0, verify.err
    assert deployer.phase() == "Success"
    testers = [o for (kind, name), o in deployer.objects().items() if "test" in name]
    assert testers, "verify ran the chart's tester pod"
    for tester in testers:
        assert tester["status"]["phase"] == "Succeeded"
        assert f"SMOKE_TEST INFO Tester 'Pod/{tester['metadata']['name']}' succeeded." in (
            verify.out
        )

    deleted = deployer.run("delete", "--timeout", "120")
    assert deleted.code == 0, deleted.err
    left = [k for k in deployer.objects() if k[0] not in made_by_controllers]
    assert left == [], f"delete left {left}"
    applied = [line.split()[1] for line in first.out.splitlines() if line.startswith("applied ")]
    gone = [line.split()[1] for line in deleted.out.splitlines() if line.startswith("deleted ")]
    assert [g for g in gone if "test" not in g] == list(reversed(applied)), "reverse order"
    assert gone[-1] == f"Application/{RELEASE}"
    again = deployer.run("delete", "--timeout", "60")
    assert again.code == 0, again.err
    assert f"Application/{RELEASE} already gone" in again.out


def test_deleting_the_application_has_the_garbage_collector_remove_what_it_owns(
    deployer: Deployer,
) -> None:
    result = deployer.run("deploy", "--timeout", "120")
    assert result.code == 0, result.err
    app = deployer.application()
    assert app is not None
    uid = app["metadata"]["uid"]
    owned = {
        key
        for key, obj in deployer.objects().items()
        if uid in {o["uid"] for o in obj["metadata"].get("ownerReferences") or []}
    }
    unowned = {
        key
        for key in deployer.objects()
        if key not in owned and key[0] not in ("Application", "Pod", "ReplicaSet")
    }
    assert unowned == set(), "every object the chart renders is owned by the Application"
    assert {"Deployment", "Service", "Secret"} <= {kind for kind, _ in owned}
    deployer.plane.run_kubectl("delete", "application", RELEASE, "-n", deployer.namespace)
    wait_until("the garbage collector removed every owned object", lambda: not deployer.objects())


def test_a_pod_that_never_gets_ready_fails_the_deploy_with_the_reason(
    deployer: Deployer, kubelet: KubeletStandIn
) -> None:
    kubelet.set_behaviour(deployer.namespace, never_ready=True)
    result = deployer.run("deploy", "--timeout", "8")
    assert result.code == 1
    assert result.seconds <= 8 + SLACK_S
    assert "not ready after" in result.err
    assert f"Deployment/{TRITON}: 0/1 replicas available" in result.err
    assert "running but not ready" in result.err
    assert deployer.phase() == "Failed"
    condition = deployer.condition()
    assert condition["reason"] == "NotReady"
    assert "running but not ready" in condition["message"]


def test_objects_the_api_server_rejects_are_all_listed_and_nothing_else_is_left_unsaid(
    deployer: Deployer,
) -> None:
    deployer.plane.run_kubectl(
        "create",
        "quota",
        "no-services-no-secrets",
        "--hard=count/services=0,count/secrets=0",
        "-n",
        deployer.namespace,
    )
    result = deployer.run("deploy", "--timeout", "60")
    assert result.code == 1
    assert "2 object(s) could not be applied" in result.err
    assert f"Service/{TRITON}: 403 Forbidden" in result.err
    assert f"Secret/{TRITON}-admin-key: 403 Forbidden" in result.err
    assert result.err.count("exceeded quota: no-services-no-secrets") == 2
    assert deployer.phase() == "Failed"
    assert deployer.condition()["reason"] == "ApplyFailed"
    in_place = result.err.split("were applied and are in place: ")[1].strip().split(", ")
    in_place.append(f"Application/{RELEASE}")
    assert f"applied Application/{RELEASE}" in result.out
    live = {f"{kind}/{name}" for kind, name in deployer.objects()}
    made_by_controllers = {k for k in live if k.startswith(("Pod/", "ReplicaSet/"))}
    assert live - made_by_controllers == set(in_place), "every object in place is named"
    assert f"Deployment/{TRITON}" in in_place, "the rest was applied past the failures"


def test_no_node_of_the_accelerator_names_the_schedulers_reason(deployer: Deployer) -> None:
    values = deployer.values(**{"gpu.accelerator": "nvidia-h200-141gb"})
    result = deployer.run("deploy", "--timeout", "8", values=values)
    assert result.code == 1
    assert result.seconds <= 8 + SLACK_S
    assert "unschedulable: 0/" in result.err
    assert "didn't match Pod's node affinity/selector" in result.err
    assert "event FailedScheduling" in result.err
    assert deployer.phase() == "Failed"
    (pod,) = [o for (kind, _), o in deployer.objects().items() if kind == "Pod"]
    assert pod["status"]["phase"] == "Pending"


def scaled_chart(directory: Path, *, progress_s: int, startup_s: int) -> Path:
    """A copy of the chart whose defaults are a ``progress_s`` progress deadline and a
    ``startup_s`` startup budget (one probe a second)."""
    chart = directory / "chart"
    shutil.copytree(CHART_DIR, chart)
    values_file = chart / "values.yaml"
    defaults = yaml.safe_load(values_file.read_text())
    defaults["progressDeadlineSeconds"] = progress_s
    defaults["probes"]["startup"] = {"periodSeconds": 1, "failureThreshold": startup_s}
    values_file.write_text(yaml.safe_dump(defaults))
    return chart


def test_consistent_budgets_deploy_a_pod_slower_than_the_kubernetes_default_would_allow(
    deployer: Deployer, kubelet: KubeletStandIn
) -> None:
    kubelet.set_behaviour(deployer.namespace, ready_after_s=10)
    refused = deployer.run(
        "deploy", chart=scaled_chart(deployer.workdir / "low", progress_s=8, startup_s=15)
    )
    assert refused.code == 2
    assert "progressDeadlineSeconds (8) is shorter than the startup budget" in refused.err
    assert deployer.application() is None, "nothing was sent"
    chart = scaled_chart(deployer.workdir / "ok", progress_s=20, startup_s=15)
    result = deployer.run("deploy", chart=chart)
    assert result.code == 0, result.err
    assert "deadline 140 s (from the chart's progressDeadlineSeconds)" in result.out
    assert result.seconds >= 10, "the pod took its 10 s"
    assert deployer.phase() == "Success"


def test_a_pod_slower_than_the_progress_deadline_fails_on_the_controllers_verdict(
    deployer: Deployer, kubelet: KubeletStandIn
) -> None:
    kubelet.set_behaviour(deployer.namespace, ready_after_s=30)
    chart = scaled_chart(deployer.workdir, progress_s=5, startup_s=5)
    result = deployer.run("deploy", chart=chart)
    assert result.code == 1
    assert "deadline 125 s" in result.out
    assert result.seconds < 30, "the controller's verdict, not the deployer's deadline"
    assert "exceeded its progress deadline" in result.err
    assert deployer.phase() == "Failed"
