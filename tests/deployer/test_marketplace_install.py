"""`mpdev install` and `mpdev verify` on the real control plane, step by step as Google's scripts
take them, with our deployer in the place of the deployer Job.

mpdev needs Docker and a GKE cluster, so its steps are reproduced with Google's own code and
kubectl: the placeholder Application and the deployer's ServiceAccount applied with kubectl as
``scripts/install`` writes them; ``provision.process`` for the values Secret, Role and
RoleBinding, through ``set_app_labels.py`` and ``set_ownership.py --noapp --deployer_uid``; then
the deployer, as the image's entrypoint runs it, authenticated as that ServiceAccount with the
Secret's ``values.yaml`` as its file.

Cases:
- install: exit 0, the placeholder Application filled in (same uid), applied with its phase
  and then Success, no tester created; its
  selector is the placeholder's and the chart's merged, and a real label-selector list by it
  finds every component the deployer applied, each owned by the Application; the pods run
  the image Marketplace republished under ``__image_repo_prefix__``; the deployer's
  ServiceAccount is gone afterwards; its Role and RoleBinding are owned by the Application
  (Google's set_ownership.py gives their `deployer-rbac` component label no ServiceAccount
  owner), and deleting the Application, as mpdev does, has the real garbage collector
  remove them and everything else, until mpdev's own wait would pass;
- verify: the values mpdev verify passes (name and namespace only) deploy through the test
  schema's model repository; the tester pod runs, its verdict printed SMOKE_TEST; the
  Application stays Success, the tester is owned by it, the ServiceAccount is gone, and
  deleting the Application removes everything;
- a failing tester: exit 1, the Application Failed with the reason, and the ServiceAccount
  kept (Google's deploy_with_tests.sh cleans up only after success);
- a plain `verify` (not the image's entrypoint) runs the tester and deletes everything it
  applied, testers included; a plain `deploy` keeps the deployer's ServiceAccount;
- bad values as the Marketplace job: exit 2, the placeholder Failed with the reason, nothing
  else applied, the ServiceAccount kept;
- the form's choices that need a companion, each as the deployer's ServiceAccount (the
  defaults are the install above): autoscaling (its queue metric's PodMonitoring derived and
  applied, the HPA live, the Application's info naming the metrics adapter and how to check
  it), istio (the Gateway and VirtualService on the app's own host NAME.NAMESPACE.triton.internal,
  the info with the DNS step and the curl), gatewayApi (gRPC derived off without a TLS Secret,
  no GRPCRoute, the info saying why) and gatewayApi with a TLS Secret (HTTPS listener, the
  GRPCRoute on grpc.NAME.NAMESPACE.triton.internal): each reaches Success.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import actions, application
from deployer.cli import main
from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from tests.conftest import CHART_DIR
from tests.deployer.conftest import PUBLISHED_VERSION, SCHEMA, TEST_SCHEMA
from tests.deployer.mpdev import (
    REPUBLISHED,
    Installed,
    PhaseWatch,
    Ran,
    get_object,
    list_objects,
    mpdev_deletes_the_application,
    mpdev_install,
    run_deployer,
)


@pytest.fixture
def gpu_node(kubelet: KubeletStandIn, k8s_namespace: str) -> Iterator[str]:
    """An L4 node of this test's own, so the session's one GPU is never what it waits for."""
    name = f"l4-{k8s_namespace}"
    kubelet.add_node(name, accelerator="nvidia-l4", gpus=1, cpu="8", memory="32Gi")
    try:
        yield name
    finally:
        kubelet.remove_node(name)


@pytest.fixture
def helm_env(helm4: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image's helm (Helm 4), found through $HELM as in the image's /usr/local/bin."""
    monkeypatch.setenv("HELM", str(helm4))
    return helm4


@dataclass(frozen=True)
class Site:
    """One test's namespace on the control plane, as Marketplace leaves it to the deployer."""

    plane: ControlPlane
    namespace: str
    workdir: Path
    capsys: pytest.CaptureFixture[str]
    helm: Path
    """The image's helm, as ``$HELM`` names it."""

    def get(self, api_version: str, kind: str, name: str) -> Any:
        """The object as the cluster holds it, or None."""
        return get_object(self.plane, api_version, kind, name, self.namespace)

    def application(self, name: str) -> Any:
        return self.get(application.API_VERSION, "Application", name)

    def install(self, form: dict[str, Any], entrypoint: str) -> Installed:
        return mpdev_install(self.plane, form, entrypoint=entrypoint, workdir=self.workdir)

    def run(self, installed: Installed, entrypoint: str | None, *extra: str) -> Ran:
        return run_deployer(installed, entrypoint, self.capsys, *extra)

    def verify(self) -> tuple[Installed, Ran]:
        """``scripts/verify``'s install (``--parameters={}`` with the name and namespace
        stitched in, the app named after its namespace) and the deployer run as
        ``deploy_with_tests.sh``."""
        form = {"name": self.namespace, "namespace": self.namespace}
        installed = self.install(form, "/bin/deploy_with_tests.sh")
        return installed, self.run(
            installed, "/bin/deploy_with_tests.sh", "--test-schema", str(TEST_SCHEMA)
        )


@pytest.fixture
def site(
    control_plane: ControlPlane,
    k8s_namespace: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Site:
    return Site(
        plane=control_plane,
        namespace=k8s_namespace,
        workdir=tmp_path,
        capsys=capsys,
        helm=helm_env,
    )


def _selector(app: dict[str, Any]) -> str:
    labels = app["spec"]["selector"]["matchLabels"]
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@pytest.mark.usefixtures("gpu_node")
def test_mpdev_install_with_our_deployer(site: Site) -> None:
    form = {
        "name": "tri",
        "namespace": site.namespace,
        "modelRepository": "gs://bucket/models",
        "replicaCount": 1,
    }
    installed = site.install(form, "/bin/deploy.sh")
    with PhaseWatch(site.plane, "tri", site.namespace) as phases:
        ran = site.run(installed, "/bin/deploy.sh")
    assert ran.code == 0, ran.err + ran.out
    assert f"removed the deployer's ServiceAccount/{installed.service_account}" in ran.out

    app = site.application("tri")
    assert app["spec"]["assemblyPhase"] == "Success"
    assert app["metadata"]["uid"] == installed.application_uid, "the placeholder, filled in"
    assert phases.seen() == ["Pending", "Success"], "Pending while applying, then Success"
    assert site.get("v1", "Pod", "tri-triton-inference-server-test-ready") is None, (
        "testers only in verify"
    )
    assert app["spec"]["descriptor"]["type"] == "Triton Inference Server"
    assert app["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tri",
        "app.kubernetes.io/instance": "tri",
    }, "the placeholder's selector and the chart's, merged"
    # Every component the deployer applied is listed by the merged selector.
    plan = actions.make_plan(
        actions.Inputs(
            chart=CHART_DIR,
            schema=SCHEMA,
            values=installed.values_file,
            helm=site.helm,
        )
    )
    listed_kinds = application.component_kinds(app)
    applied = [o for o in plan.objects if o is not plan.application]
    by_kind: dict[tuple[str, str], set[str]] = {}
    for obj in applied:
        by_kind.setdefault((obj["apiVersion"], obj["kind"]), set()).add(obj["metadata"]["name"])
    checked = 0
    for (api_version, kind), names in sorted(by_kind.items()):
        group = api_version.rpartition("/")[0]
        if (group, kind) not in listed_kinds:
            continue
        found = list_objects(site.plane, api_version, kind, site.namespace, _selector(app))
        assert {o["metadata"]["name"] for o in found} == names, kind
        for live in found:
            owners = [r["uid"] for r in live["metadata"]["ownerReferences"]]
            assert owners == [app["metadata"]["uid"]], f"{kind} owned by the Application"
        checked += 1
    assert checked >= 3, "Deployment, Service, ServiceAccount at least"
    # The pods run the images Marketplace republished.
    deployment = next(o for o in applied if o["kind"] == "Deployment")
    pod_labels = deployment["spec"]["selector"]["matchLabels"]
    pods = list_objects(
        site.plane,
        "v1",
        "Pod",
        site.namespace,
        ",".join(f"{k}={v}" for k, v in pod_labels.items()),
    )
    assert pods
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert f"{REPUBLISHED}:{PUBLISHED_VERSION}" in images
    assert all(i.startswith(REPUBLISHED) for i in images), images
    # The deployer's account is gone; its Role and RoleBinding stay with the Application.
    sa = installed.service_account
    assert site.get("v1", "ServiceAccount", sa) is None
    rbac = "rbac.authorization.k8s.io/v1"
    role = site.get(rbac, "Role", "tri-deployer-r0")
    binding = site.get(rbac, "RoleBinding", "tri-deployer-rb0")
    for owned in (role, binding):
        owners = [(r["kind"], r["uid"]) for r in owned["metadata"]["ownerReferences"]]
        assert owners == [("Application", app["metadata"]["uid"])]
    mpdev_deletes_the_application(site.plane, installed)


@pytest.mark.usefixtures("gpu_node")
def test_mpdev_verify_with_our_deployer(site: Site) -> None:
    installed, ran = site.verify()
    assert ran.code == 0, ran.err + ran.out
    tester = f"{site.namespace}-triton-inference-server-test-ready"
    assert f"SMOKE_TEST INFO Tester 'Pod/{tester}' succeeded." in ran.out
    app = site.application(site.namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    pod = site.get("v1", "Pod", tester)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["annotations"]["marketplace.cloud.google.com/verification"] == "test"
    assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [app["metadata"]["uid"]]
    assert pod["spec"]["containers"][0]["image"] == f"{REPUBLISHED}/tester:{PUBLISHED_VERSION}"
    deployment = site.get("apps/v1", "Deployment", f"{site.namespace}-triton-inference-server")
    args = " ".join(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "gs://goog-verify-model-repository-unset/models" in args, "the test schema's default"
    sa = installed.service_account
    assert site.get("v1", "ServiceAccount", sa) is None
    mpdev_deletes_the_application(site.plane, installed)


@pytest.mark.usefixtures("gpu_node")
def test_a_failing_tester_marks_failed_and_keeps_the_account(
    site: Site, kubelet: KubeletStandIn
) -> None:
    kubelet.set_behaviour(site.namespace, test_pods_succeed=False)
    installed, ran = site.verify()
    assert ran.code == 1
    assert "SMOKE_TEST ERROR Tester" in ran.out and "failed." in ran.out
    assert "At least 1 test failed or timed out." in ran.err
    app = site.application(site.namespace)
    assert app["spec"]["assemblyPhase"] == "Failed"
    assert app["status"]["conditions"][0]["reason"] == "TesterFailed"
    sa = installed.service_account
    assert site.get("v1", "ServiceAccount", sa) is not None


@pytest.mark.usefixtures("gpu_node")
def test_a_plain_verify_deletes_what_it_applied(site: Site) -> None:
    values_file = site.workdir / "values.yaml"
    values_file.write_text(
        yaml.safe_dump(
            {"name": "tri", "namespace": site.namespace, "modelRepository": "gs://bucket/models"}
        )
    )
    code = main(
        [
            "verify",
            *("--values", str(values_file), "--schema", str(SCHEMA), "--chart", str(CHART_DIR)),
            *("--kubeconfig", str(site.plane.kubeconfig), "--poll-interval", "0.2"),
            *("--timeout", "120"),
        ]
    )
    out = site.capsys.readouterr().out
    assert code == 0, out
    assert "SMOKE_TEST INFO Tester 'Pod/tri-triton-inference-server-test-ready' succeeded." in out
    assert "verification passed" in out

    def left() -> list[str]:
        listed = site.plane.run_kubectl(
            "get", "all,secrets,serviceaccounts", f"--namespace={site.namespace}", "-o=name"
        )
        return listed.stdout.split()

    # The Deployment's pods go after verify returns, through the garbage collector.
    wait_until(
        "verify deleted everything it applied (pods through the garbage collector)",
        lambda: left() == ["serviceaccount/default"],
        30.0,
    )


@pytest.mark.usefixtures("gpu_node")
def test_a_plain_deploy_keeps_the_deployer_account(site: Site) -> None:
    form = {"name": "tri", "namespace": site.namespace, "modelRepository": "gs://bucket/models"}
    installed = site.install(form, "/bin/deploy.sh")
    ran = site.run(installed, None)
    assert ran.code == 0, ran.err + ran.out
    assert "removed the deployer's" not in ran.out
    app = site.application("tri")
    assert app["spec"]["assemblyPhase"] == "Success"
    sa = installed.service_account
    assert site.get("v1", "ServiceAccount", sa) is not None


def test_bad_values_mark_the_placeholder_failed(site: Site) -> None:
    form = {"name": "tri", "namespace": site.namespace, "modelRepository": "s3://elsewhere/m"}
    installed = site.install(form, "/bin/deploy.sh")
    ran = site.run(installed, "/bin/deploy.sh")
    assert ran.code == 2
    assert "modelRepository (Model repository): 's3://elsewhere/m' does not match" in ran.err
    app = site.application("tri")
    assert app["spec"]["assemblyPhase"] == "Failed"
    assert app["status"]["conditions"][0]["reason"] == "BadInput"
    left = site.plane.run_kubectl("get", "all", f"--namespace={site.namespace}", "-o=name")
    assert left.stdout.split() == ["application.app.k8s.io/tri"], "only the placeholder"
    sa = installed.service_account
    assert site.get("v1", "ServiceAccount", sa) is not None


CHOICES: dict[str, dict[str, Any]] = {
    "autoscaling": {"autoscaling.enabled": True},
    "istio": {"ingress.mode": "istio"},
    "gatewayApi": {"ingress.mode": "gatewayApi"},
    "gatewayApi-tls": {"ingress.mode": "gatewayApi", "ingress.tls.secretName": "triton-tls"},
}


@pytest.mark.usefixtures("gpu_node")
@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_a_choice_that_needs_a_companion_reaches_success(site: Site, choice: str) -> None:
    form = {"name": "tri", "namespace": site.namespace, "modelRepository": "gs://bucket/models"}
    installed = site.install({**form, **CHOICES[choice]}, "/bin/deploy.sh")
    ran = site.run(installed, "/bin/deploy.sh")
    assert ran.code == 0, ran.err + ran.out
    app = site.application("tri")
    assert app["spec"]["assemblyPhase"] == "Success"
    info = {item["name"]: item["value"] for item in app["spec"]["info"]}
    name, own = "tri-triton-inference-server", f"tri.{site.namespace}.triton.internal"
    gateway_api = "gateway.networking.k8s.io/v1"
    if choice == "autoscaling":
        assert "derived metrics.podMonitoring.enabled=true: autoscaling on queueTime" in ran.out
        assert site.get("autoscaling/v2", "HorizontalPodAutoscaler", name) is not None
        assert site.get("monitoring.googleapis.com/v1", "PodMonitoring", name) is not None
        assert "kubectl get apiservice v1beta1.custom.metrics.k8s.io" in info["Autoscaling"]
        assert "autoscaling on queueTime reads them through it" in info["Metrics"]
    elif choice == "istio":
        gateway = site.get("networking.istio.io/v1", "Gateway", name)
        assert [s["hosts"] for s in gateway["spec"]["servers"]] == [[own]]
        service = site.get("networking.istio.io/v1", "VirtualService", name)
        assert service["spec"]["hosts"] == [own]
        assert f"curl -H 'Host: {own}'" in info["Ingress host (HTTP)"]
        assert f"gcloud dns record-sets create {own}." in app["spec"]["descriptor"]["notes"]
    elif choice == "gatewayApi":
        assert "derived ingress.grpc.enabled=false: GKE's load balancers speak gRPC" in ran.out
        assert site.get(gateway_api, "HTTPRoute", name) is not None
        assert site.get(gateway_api, "GRPCRoute", name) is None
        assert info["gRPC at the edge"].startswith("off: GKE's load balancers speak gRPC")
    else:
        assert "derived ingress.tls.enabled=true" in ran.out
        gateway = site.get(gateway_api, "Gateway", name)
        assert [listener["name"] for listener in gateway["spec"]["listeners"]] == ["http", "https"]
        route = site.get(gateway_api, "GRPCRoute", name)
        assert route["spec"]["hostnames"] == [f"grpc.{own}"]
        assert info["gRPC at the edge"].startswith(f"grpc.{own}, over TLS on port 443")
