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
  else applied, the ServiceAccount kept.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, watch
from kubernetes.dynamic import DynamicClient

from deployer import actions, application
from deployer.cli import main
from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import SCHEMA
from tests.deployer.google_tools import DEPLOYER_UTIL, google_module
from tests.kube.control_plane import ControlPlane, wait_until
from tests.kube.kubelet import KubeletStandIn

DEPLOYER_IMAGE = "gcr.io/my-project/triton/deployer:0.1.0"
REPUBLISHED = "gcr.io/my-project/triton"
TEST_SCHEMA = ROOT / "deployer" / "marketplace" / "test-schema.yaml"
SHIMS = ROOT / "deployer" / "marketplace"


def shim_arguments(entrypoint: str) -> list[str]:
    """The deployer arguments the image's entrypoint script passes (``/bin/deploy.sh``)."""
    text = (SHIMS / Path(entrypoint).name).read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
    return [a for a in shlex.split(exec_line)[2:] if a != "$@"]


def google_script(script: str, *arguments: str, stdin: str) -> str:
    done = subprocess.run(
        [sys.executable, str(DEPLOYER_UTIL / script), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"{script}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Installed:
    """What ``scripts/install`` left for the deployer Job."""

    name: str
    namespace: str
    application_uid: str
    """The placeholder Application's uid."""
    service_account: str
    values_file: Path
    kubeconfig: Path
    """The deployer's ServiceAccount's credentials (a real token)."""


def mpdev_install(
    plane: ControlPlane, parameters: dict[str, Any], *, entrypoint: str, workdir: Path
) -> Installed:
    """Google's ``scripts/install``, its Docker step aside, up to the deployer Job."""
    config_helper = google_module("config_helper")
    provision = google_module("provision")
    make_dns1123_name = google_module("make_dns1123_name")
    schema = config_helper.Schema.load_yaml_file(str(SCHEMA))
    name = provision.get_name(schema, parameters)
    namespace = provision.get_namespace(schema, parameters)
    app_version = schema.app_api_version

    def kubectl_apply(manifest: str) -> None:
        plane.run_kubectl("apply", f"--namespace={namespace}", "--filename=-", stdin=manifest)

    def uid_of(kind: str, object_name: str) -> str:
        got = plane.run_kubectl(
            "get",
            f"{kind}/{object_name}",
            f"--namespace={namespace}",
            "--output=jsonpath={.metadata.uid}",
        )
        return got.stdout.strip()

    kubectl_apply(
        f"""apiVersion: "app.k8s.io/{app_version}"
kind: Application
metadata:
  name: "{name}"
  namespace: "{namespace}"
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: "{name}"
  assemblyPhase: "Pending"
"""
    )
    app_uid = uid_of("applications.app.k8s.io", name)
    service_account = f"{make_dns1123_name.dns1123_name(name)}-deployer-sa"
    kubectl_apply(
        f"""apiVersion: "v1"
kind: ServiceAccount
metadata:
  name: "{service_account}"
  namespace: "{namespace}"
"""
    )
    deployer_uid = uid_of("sa", service_account)
    manifests = provision.process(
        schema,
        dict(parameters),
        deployer_image=DEPLOYER_IMAGE,
        deployer_entrypoint=entrypoint,
        version_repo="",
        image_pull_secret="",
        deployer_service_account_name=service_account,
        storage_class_provisioner="",
    )
    labelled = google_script(
        "set_app_labels.py",
        "--manifests=-",
        "--dest=-",
        f"--name={name}",
        f"--namespace={namespace}",
        stdin=yaml.safe_dump_all(manifests),
    )
    owned = google_script(
        "set_ownership.py",
        "--manifests=-",
        "--dest=-",
        "--noapp",
        f"--app_name={name}",
        f"--app_uid={app_uid}",
        f"--app_api_version=app.k8s.io/{app_version}",
        f"--deployer_name={service_account}",
        f"--deployer_uid={deployer_uid}",
        stdin=labelled,
    )
    # Everything but the deployer Job: this test runs the deployer in its place.
    kinds = [d["kind"] for d in yaml.safe_load_all(owned) if d]
    assert sorted(kinds) == ["Job", "Role", "RoleBinding", "Secret", "ServiceAccount"]
    kubectl_apply(yaml.safe_dump_all([d for d in yaml.safe_load_all(owned) if d["kind"] != "Job"]))
    # The Job mounts the Secret's values.yaml at /data/values.yaml: read it back as applied.
    core: Any = client.CoreV1Api(plane.api_client())
    secret = core.read_namespaced_secret(f"{name}-deployer-config", namespace)
    values_file = workdir / "values.yaml"
    values_file.write_bytes(base64.b64decode(secret.data["values.yaml"]))
    return Installed(
        name=name,
        namespace=namespace,
        application_uid=app_uid,
        service_account=service_account,
        values_file=values_file,
        kubeconfig=plane.kubeconfig_for(namespace, service_account),
    )


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_deployer(
    installed: Installed, entrypoint: str | None, capsys: pytest.CaptureFixture[str], *extra: str
) -> Ran:
    """The deployer as the image's entrypoint runs it (None: a plain ``deploy``), as the
    deployer's ServiceAccount."""
    capsys.readouterr()
    code = main(
        [
            *(shim_arguments(entrypoint) if entrypoint else ["deploy"]),
            "--values",
            str(installed.values_file),
            "--schema",
            str(SCHEMA),
            "--chart",
            str(CHART_DIR),
            "--kubeconfig",
            str(installed.kubeconfig),
            "--poll-interval",
            "0.2",
            "--timeout",
            "120",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return Ran(code=code, out=captured.out, err=captured.err)


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


def _get(plane: ControlPlane, api_version: str, kind: str, name: str, namespace: str) -> Any:
    dynamic: Any = DynamicClient(plane.api_client())  # type: ignore[no-untyped-call]
    resource = dynamic.resources.get(api_version=api_version, kind=kind)
    try:
        return resource.get(name=name, namespace=namespace).to_dict()
    except Exception as exc:  # the dynamic client's NotFoundError
        if getattr(exc, "status", None) == 404:
            return None
        raise


def _list(plane: ControlPlane, api_version: str, kind: str, namespace: str, selector: str) -> Any:
    dynamic: Any = DynamicClient(plane.api_client())  # type: ignore[no-untyped-call]
    resource = dynamic.resources.get(api_version=api_version, kind=kind)
    return resource.get(namespace=namespace, label_selector=selector).to_dict()["items"]


def mpdev_deletes_the_application(plane: ControlPlane, installed: Installed) -> None:
    """What mpdev verify does after the deploy: delete the Application, then wait until
    `all`, and serviceaccounts, roles, rolebindings (but `default`) are gone."""
    ns = installed.namespace
    plane.run_kubectl("delete", f"application/{installed.name}", f"--namespace={ns}")

    def left() -> list[str]:
        shown = plane.run_kubectl(
            "get", "all,serviceaccounts,roles,rolebindings,secrets", f"--namespace={ns}", "-o=name"
        ).stdout.split()
        return [r for r in shown if r != "serviceaccount/default"]

    wait_until("every object of the app deleted by the garbage collector", lambda: not left(), 90.0)


class PhaseWatch:
    """Every ``spec.assemblyPhase`` the Application goes through, from a real watch."""

    def __init__(self, plane: ControlPlane, name: str, namespace: str) -> None:
        self._client = plane.api_client()
        self._api: Any = client.CustomObjectsApi(self._client)
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._phases: list[str] = []
        self._args = (name, namespace)
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def _follow(self) -> None:
        name, namespace = self._args
        group, version = application.API_VERSION.split("/")
        events = self._watch.stream(  # type: ignore[no-untyped-call]
            self._api.list_namespaced_custom_object,
            group,
            version,
            namespace,
            "applications",
            field_selector=f"metadata.name={name}",
            timeout_seconds=300,
        )
        try:
            for event in events:
                phase = str((event["object"].get("spec") or {}).get("assemblyPhase"))
                if not self._phases or self._phases[-1] != phase:
                    self._phases.append(phase)
        except urllib3.exceptions.HTTPError:
            return  # the connection closed under the watch: it has ended

    def __enter__(self) -> PhaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(1.0)  # the last events in flight
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=10)

    def seen(self) -> list[str]:
        """The phases in order, each change once."""
        return list(self._phases)


def _selector(app: dict[str, Any]) -> str:
    labels = app["spec"]["selector"]["matchLabels"]
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def test_mpdev_install_with_our_deployer(
    control_plane: ControlPlane,
    k8s_namespace: str,
    gpu_node: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = {
        "name": "tri",
        "namespace": k8s_namespace,
        "modelRepository": "gs://bucket/models",
        "replicaCount": 1,
    }
    installed = mpdev_install(control_plane, form, entrypoint="/bin/deploy.sh", workdir=tmp_path)
    with PhaseWatch(control_plane, "tri", k8s_namespace) as phases:
        ran = run_deployer(installed, "/bin/deploy.sh", capsys)
    assert ran.code == 0, ran.err + ran.out
    assert f"removed the deployer's ServiceAccount/{installed.service_account}" in ran.out

    app = _get(control_plane, application.API_VERSION, "Application", "tri", k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    assert app["metadata"]["uid"] == installed.application_uid, "the placeholder, filled in"
    assert phases.seen() == ["Pending", "Success"], "Pending while applying, then Success"
    assert (
        _get(control_plane, "v1", "Pod", "tri-triton-inference-server-test-ready", k8s_namespace)
        is None
    ), "testers only in verify"
    assert app["spec"]["descriptor"]["type"] == "Triton Inference Server"
    assert app["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tri",
        "app.kubernetes.io/instance": "tri",
    }, "the placeholder's selector and the chart's, merged"
    # Every component the deployer applied is listed by the merged selector.
    plan = actions.make_plan(
        actions.Inputs(chart=CHART_DIR, schema=SCHEMA, values=installed.values_file, helm=helm_env)
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
        found = _list(control_plane, api_version, kind, k8s_namespace, _selector(app))
        assert {o["metadata"]["name"] for o in found} == names, kind
        for live in found:
            owners = [r["uid"] for r in live["metadata"]["ownerReferences"]]
            assert owners == [app["metadata"]["uid"]], f"{kind} owned by the Application"
        checked += 1
    assert checked >= 3, "Deployment, Service, ServiceAccount at least"
    # The pods run the images Marketplace republished.
    deployment = next(o for o in applied if o["kind"] == "Deployment")
    pod_labels = deployment["spec"]["selector"]["matchLabels"]
    pods = _list(
        control_plane,
        "v1",
        "Pod",
        k8s_namespace,
        ",".join(f"{k}={v}" for k, v in pod_labels.items()),
    )
    assert pods
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert f"{REPUBLISHED}:0.1.0" in images
    assert all(i.startswith(REPUBLISHED) for i in images), images
    # The deployer's account is gone; its Role and RoleBinding stay with the Application.
    sa = installed.service_account
    assert _get(control_plane, "v1", "ServiceAccount", sa, k8s_namespace) is None
    rbac = "rbac.authorization.k8s.io/v1"
    role = _get(control_plane, rbac, "Role", "tri-deployer-r0", k8s_namespace)
    binding = _get(control_plane, rbac, "RoleBinding", "tri-deployer-rb0", k8s_namespace)
    for owned in (role, binding):
        owners = [(r["kind"], r["uid"]) for r in owned["metadata"]["ownerReferences"]]
        assert owners == [("Application", app["metadata"]["uid"])]
    mpdev_deletes_the_application(control_plane, installed)


def mpdev_verify(
    plane: ControlPlane, namespace: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Installed, Ran]:
    """``scripts/verify``'s install (``--parameters={}`` with the name and namespace stitched
    in, the app named after its namespace) and the deployer run as ``deploy_with_tests.sh``."""
    form = {"name": namespace, "namespace": namespace}
    entrypoint = "/bin/deploy_with_tests.sh"
    installed = mpdev_install(plane, form, entrypoint=entrypoint, workdir=workdir)
    ran = run_deployer(installed, entrypoint, capsys, "--test-schema", str(TEST_SCHEMA))
    return installed, ran


def test_mpdev_verify_with_our_deployer(
    control_plane: ControlPlane,
    kubelet: KubeletStandIn,
    k8s_namespace: str,
    gpu_node: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    installed, ran = mpdev_verify(control_plane, k8s_namespace, tmp_path, capsys)
    assert ran.code == 0, ran.err + ran.out
    tester = f"{k8s_namespace}-triton-inference-server-test-ready"
    assert f"SMOKE_TEST INFO Tester 'Pod/{tester}' succeeded." in ran.out
    app = _get(control_plane, application.API_VERSION, "Application", k8s_namespace, k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    pod = _get(control_plane, "v1", "Pod", tester, k8s_namespace)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["annotations"]["marketplace.cloud.google.com/verification"] == "test"
    assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [app["metadata"]["uid"]]
    assert pod["spec"]["containers"][0]["image"] == f"{REPUBLISHED}/tester:0.1.0"
    deployment = _get(
        control_plane,
        "apps/v1",
        "Deployment",
        f"{k8s_namespace}-triton-inference-server",
        k8s_namespace,
    )
    args = " ".join(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "gs://goog-verify-model-repository-unset/models" in args, "the test schema's default"
    sa = installed.service_account
    assert _get(control_plane, "v1", "ServiceAccount", sa, k8s_namespace) is None
    mpdev_deletes_the_application(control_plane, installed)


def test_a_failing_tester_marks_failed_and_keeps_the_account(
    control_plane: ControlPlane,
    kubelet: KubeletStandIn,
    k8s_namespace: str,
    gpu_node: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubelet.set_behaviour(k8s_namespace, test_pods_succeed=False)
    installed, ran = mpdev_verify(control_plane, k8s_namespace, tmp_path, capsys)
    assert ran.code == 1
    assert "SMOKE_TEST ERROR Tester" in ran.out and "failed." in ran.out
    assert "At least 1 test failed or timed out." in ran.err
    app = _get(control_plane, application.API_VERSION, "Application", k8s_namespace, k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Failed"
    assert app["status"]["conditions"][0]["reason"] == "TesterFailed"
    sa = installed.service_account
    assert _get(control_plane, "v1", "ServiceAccount", sa, k8s_namespace) is not None


def test_a_plain_verify_deletes_what_it_applied(
    control_plane: ControlPlane,
    k8s_namespace: str,
    gpu_node: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(
        yaml.safe_dump(
            {"name": "tri", "namespace": k8s_namespace, "modelRepository": "gs://bucket/models"}
        )
    )
    code = main(
        [
            "verify",
            *("--values", str(values_file), "--schema", str(SCHEMA), "--chart", str(CHART_DIR)),
            *("--kubeconfig", str(control_plane.kubeconfig), "--poll-interval", "0.2"),
            *("--timeout", "120"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SMOKE_TEST INFO Tester 'Pod/tri-triton-inference-server-test-ready' succeeded." in out
    assert "verification passed" in out

    def left() -> list[str]:
        listed = control_plane.run_kubectl(
            "get", "all,secrets,serviceaccounts", f"--namespace={k8s_namespace}", "-o=name"
        )
        return listed.stdout.split()

    # The Deployment's pods go after verify returns, through the garbage collector.
    wait_until(
        "verify deleted everything it applied (pods through the garbage collector)",
        lambda: left() == ["serviceaccount/default"],
        30.0,
    )


def test_a_plain_deploy_keeps_the_deployer_account(
    control_plane: ControlPlane,
    k8s_namespace: str,
    gpu_node: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = {"name": "tri", "namespace": k8s_namespace, "modelRepository": "gs://bucket/models"}
    installed = mpdev_install(control_plane, form, entrypoint="/bin/deploy.sh", workdir=tmp_path)
    ran = run_deployer(installed, None, capsys)
    assert ran.code == 0, ran.err + ran.out
    assert "removed the deployer's" not in ran.out
    app = _get(control_plane, application.API_VERSION, "Application", "tri", k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Success"
    sa = installed.service_account
    assert _get(control_plane, "v1", "ServiceAccount", sa, k8s_namespace) is not None


def test_bad_values_mark_the_placeholder_failed(
    control_plane: ControlPlane,
    k8s_namespace: str,
    helm_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = {"name": "tri", "namespace": k8s_namespace, "modelRepository": "s3://elsewhere/m"}
    installed = mpdev_install(control_plane, form, entrypoint="/bin/deploy.sh", workdir=tmp_path)
    ran = run_deployer(installed, "/bin/deploy.sh", capsys)
    assert ran.code == 2
    assert "modelRepository (Model repository): 's3://elsewhere/m' does not match" in ran.err
    app = _get(control_plane, application.API_VERSION, "Application", "tri", k8s_namespace)
    assert app["spec"]["assemblyPhase"] == "Failed"
    assert app["status"]["conditions"][0]["reason"] == "BadInput"
    left = control_plane.run_kubectl("get", "all", f"--namespace={k8s_namespace}", "-o=name")
    assert left.stdout.split() == ["application.app.k8s.io/tri"], "only the placeholder"
    sa = installed.service_account
    assert _get(control_plane, "v1", "ServiceAccount", sa, k8s_namespace) is not None
