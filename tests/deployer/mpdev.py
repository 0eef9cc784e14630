"""Google's ``mpdev install`` and ``mpdev verify`` up to the deployer Job, reproduced with
Google's own code and kubectl on the real control plane (mpdev itself needs Docker and GKE).
On the control plane with the kubelet stand-in, the deployer runs in the Job's place, as the
image's entrypoint runs it; on a real node the Job itself is applied and runs the image.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, watch
from kubernetes.dynamic import DynamicClient

from deployer import application
from deployer.cli import main
from standins.kube.control_plane import ControlPlane, wait_until
from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import PUBLISHED_VERSION, SCHEMA
from tests.deployer.google_tools import DEPLOYER_UTIL, google_module

REPUBLISHED = "gcr.io/my-project/triton"
"""Where Marketplace republished the release's images (``__image_repo_prefix__``)."""
DEPLOYER_IMAGE = f"{REPUBLISHED}/deployer:{PUBLISHED_VERSION}"
SHIMS = ROOT / "deployer" / "marketplace"


def shim_arguments(entrypoint: str, shims: Path = SHIMS) -> list[str]:
    """The deployer arguments the image's entrypoint script passes (``/bin/deploy.sh``), as
    the scripts in ``shims`` write them."""
    text = (shims / Path(entrypoint).name).read_text()
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
    plane: ControlPlane,
    parameters: dict[str, Any],
    *,
    entrypoint: str | None,
    workdir: Path,
    schema_file: Path = SCHEMA,
    deployer_image: str = DEPLOYER_IMAGE,
    with_job: bool = False,
) -> Installed:
    """Google's ``scripts/install``, its Docker step aside, up to the deployer Job (applied too
    ``with_job``, on a cluster that runs pods), for the deployer image ``deployer_image`` whose
    form is ``schema_file``. ``entrypoint`` None is a Job with no command: the image's own
    entrypoint runs. Run again over an installed app, it is a second deploy: the placeholder
    applied over the Application, the deployer's account, values and rights provisioned anew."""
    config_helper = google_module("config_helper")
    provision = google_module("provision")
    make_dns1123_name = google_module("make_dns1123_name")
    schema = config_helper.Schema.load_yaml_file(str(schema_file))
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
        deployer_image=deployer_image,
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
    # Without the Job, a test runs the deployer in its place.
    kinds = [d["kind"] for d in yaml.safe_load_all(owned) if d]
    assert sorted(kinds) == ["Job", "Role", "RoleBinding", "Secret", "ServiceAccount"]
    applied = [d for d in yaml.safe_load_all(owned) if d and (with_job or d["kind"] != "Job")]
    kubectl_apply(yaml.safe_dump_all(applied))
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


def get_object(plane: ControlPlane, api_version: str, kind: str, name: str, namespace: str) -> Any:
    dynamic: Any = DynamicClient(plane.api_client())  # type: ignore[no-untyped-call]
    resource = dynamic.resources.get(api_version=api_version, kind=kind)
    try:
        return resource.get(name=name, namespace=namespace).to_dict()
    except Exception as exc:  # the dynamic client's NotFoundError
        if getattr(exc, "status", None) == 404:
            return None
        raise


def list_objects(
    plane: ControlPlane, api_version: str, kind: str, namespace: str, selector: str
) -> Any:
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
        self._stopped = threading.Event()
        self._resource_version = ""

    def _list(self) -> None:
        """Record the Application as it is now and the version to watch from."""
        name, namespace = self._args
        group, version = application.API_VERSION.split("/")
        listing = self._api.list_namespaced_custom_object(
            group, version, namespace, "applications", field_selector=f"metadata.name={name}"
        )
        for item in listing["items"]:
            self._record(item)
        self._resource_version = str(listing["metadata"]["resourceVersion"])

    def _record(self, app: dict[str, Any]) -> None:
        phase = str((app.get("spec") or {}).get("assemblyPhase"))
        if not self._phases or self._phases[-1] != phase:
            self._phases.append(phase)

    def _follow(self) -> None:
        name, namespace = self._args
        group, version = application.API_VERSION.split("/")
        while not self._stopped.is_set():
            events = self._watch.stream(  # type: ignore[no-untyped-call]
                self._api.list_namespaced_custom_object,
                group,
                version,
                namespace,
                "applications",
                field_selector=f"metadata.name={name}",
                resource_version=self._resource_version,
                timeout_seconds=300,
            )
            try:
                for event in events:
                    self._record(event["object"])
                    self._resource_version = event["object"]["metadata"]["resourceVersion"]
            except urllib3.exceptions.HTTPError:
                return  # the connection closed under the watch: it has ended
            except client.ApiException as exc:
                # A young API server's watch cache can lag the version it was asked to
                # resume from ("Too large resource version", 504): watch again. A version
                # too old to resume from (410): list again.
                if exc.status not in (410, 504):
                    raise
                if exc.status == 410:
                    self._list()
                time.sleep(0.2)

    def __enter__(self) -> PhaseWatch:
        # List, then watch from the list's version, so no change between the two is missed
        # however late the thread starts (a busy machine starts it after the first phase).
        self._list()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(1.0)  # the last events in flight
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=10)

    def seen(self) -> list[str]:
        """The phases in order, each change once."""
        return list(self._phases)
