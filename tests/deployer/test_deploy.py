"""The deployer's commands end to end: real helm, the real ``kubernetes`` client, the emulator.

What a real API server can show runs on the real control plane instead
(test_cluster_deployer.py: what a deploy applies, a second deploy, rejections, readiness
failures, the progress deadline, status, delete, the kept key); what stays here needs the
emulator's request log or its injected faults, or no cluster at all.

Cases:
- deploy of a Marketplace chart (fixture): the Application first, owner references by uid on
  namespaced component kinds only, the Application's selector labels and
  `app.kubernetes.io/name: NAME` on every object, test hooks left out, phase Success;
- invalid values: exit 2, every problem listed with its key, not one request sent;
- a chart with a non-test hook, or a kind the cluster does not serve: nothing applied;
- events that cannot be read do not hide a readiness timeout;
- verify prints the tester pod's log prefixed SMOKE_TEST (test_marketplace_install.py runs
  verify itself, mpdev's and the plain one, on the real control plane);
- render prints the objects, Secret values redacted; no command ever prints Secret data;
  for the real chart it prints the Application named after the release and the key's
  Secret marked create-only;
- an API server that cannot be reached is a one-line error and exit 1;
- a live key Secret without the chart's key is applied over; its value is never printed;
- with autoscaling on, the Deployment carries no replicas and a redeploy leaves the
  autoscaler's count alone.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deployer import values
from deployer.cluster import Cluster
from deployer.objects import ObjectRef
from standins.emulator.cluster import EmulatedCluster
from standins.emulator.controllers import HEALTHY, deployment_stuck
from tests.conftest import CHART_DIR
from tests.deployer.conftest import (
    BASE_VALUES,
    MARKETPLACE_CHART,
    NAMESPACE,
    RELEASE,
    SCHEMA,
    Run,
    write_image_grammar,
    write_values,
)

SECRET_SENTINEL = f"sentinel-{RELEASE}-never-printed"


def helm_template(helm: Path, chart: Path) -> list[dict[str, Any]]:
    """What the chart renders, straight from helm, for BASE_VALUES as the schema resolves
    them (its defaults override the chart's, as on Marketplace)."""
    resolved = values.resolve(values.load_schema(SCHEMA, chart=CHART_DIR), BASE_VALUES)
    with tempfile.TemporaryDirectory() as workdir:
        values_file = Path(workdir) / "values.yaml"
        values_file.write_text(yaml.safe_dump(resolved.chart_values))
        out = subprocess.run(
            [str(helm), "template", RELEASE, str(chart), "-n", NAMESPACE, "-f", str(values_file)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def regular(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if "helm.sh/hook" not in (o["metadata"].get("annotations") or {})]


def keys(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_marketplace_deploy_owns_labels_and_reports_success(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster, helm4: Path
) -> None:
    emulator.set_controllers(HEALTHY)
    result = run("deploy", "--timeout", "10", chart=marketplace_chart)
    assert result.code == 0, result.err
    rendered = helm_template(helm4, MARKETPLACE_CHART)
    assert keys(emulator.objects()) == keys(regular(rendered))
    app = emulator.find("Application", RELEASE)
    assert app is not None
    assert app["spec"]["assemblyPhase"] == "Success"
    assert app["status"]["conditions"][0]["status"] == "True"
    uid = app["metadata"]["uid"]
    # The Application is applied before anything it owns.
    first_write = emulator.writes()[0]
    assert first_write[1].endswith(f"/applications/{RELEASE}")
    kinds = {c["kind"] for c in app["spec"]["componentKinds"]}
    for obj in emulator.objects():
        if obj["kind"] == "Application":
            continue
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == RELEASE
        owners = obj["metadata"].get("ownerReferences", [])
        namespaced = "namespace" in obj["metadata"]
        if namespaced and obj["kind"] in kinds:
            assert owners == [
                {
                    "apiVersion": "app.k8s.io/v1beta1",
                    "kind": "Application",
                    "name": RELEASE,
                    "uid": uid,
                    "blockOwnerDeletion": True,
                }
            ], obj["kind"]
        else:
            assert owners == [], f"{obj['kind']} is cluster-scoped: no namespaced owner"
    assert emulator.find("Pod", f"{RELEASE}-test-ready") is None, "tests run only in verify"
    assert SECRET_SENTINEL not in result.out + result.err


def test_invalid_values_exit_2_listing_every_problem_and_send_nothing(
    run: Run, emulator: EmulatedCluster, tmp_path: Path
) -> None:
    values = tmp_path / "bad.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "name": RELEASE,
                "namespace": NAMESPACE,
                "replicaCount": 0,
                "server": {"modelControlMode": "sometimes"},
                "gpus": 2,
            }
        )
    )
    result = run("deploy", values=values)
    assert result.code == 2
    for key in ("modelRepository", "replicaCount", "server.modelControlMode", "gpus"):
        assert f"  - {key}" in result.err, key
    assert "nothing was sent to the cluster" in result.err
    assert emulator.requests() == []


def make_chart(directory: Path, *, name: str, manifests: str) -> Path:
    """A one-template chart holding ``manifests``."""
    chart = directory / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (chart / "templates" / "all.yaml").write_text(manifests)
    write_image_grammar(chart)
    return chart


HOOKED = (
    "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n"
    "    helm.sh/hook: pre-install,pre-upgrade\nspec:\n  template:\n    spec:\n"
    "      restartPolicy: Never\n      containers: [{name: m, image: busybox}]\n"
)
UNSERVED = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n---\n"
    "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
)


@pytest.mark.parametrize(
    ("manifests", "code", "message", "reads_cluster"),
    [
        (HOOKED, 2, "Job/migrate (pre-install, pre-upgrade)", False),
        (UNSERVED, 1, "does not serve Widget (example.com/v1)", True),
    ],
    ids=["install-hook", "unserved-kind"],
)
def test_a_chart_the_deployer_cannot_apply_changes_nothing(
    run: Run,
    emulator: EmulatedCluster,
    tmp_path: Path,
    manifests: str,
    code: int,
    message: str,
    reads_cluster: bool,
) -> None:
    result = run("deploy", chart=make_chart(tmp_path, name="odd", manifests=manifests))
    assert result.code == code
    assert message in result.err
    assert emulator.writes() == []
    if not reads_cluster:
        assert emulator.requests() == [], "a chart problem is found before any request"


def test_verify_prints_the_testers_log_prefixed_smoke_test(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster
) -> None:
    # The kubelet stand-in of the real control plane serves no logs; the emulator does.
    emulator.set_controllers(HEALTHY)
    tester = f"{RELEASE}-test-ready"
    emulator.set_pod_log(tester, "ready: 200 OK")
    result = run("verify", "--timeout", "10", chart=marketplace_chart)
    assert result.code == 0, result.err
    assert "SMOKE_TEST ready: 200 OK" in result.out
    assert "verification passed" in result.out


def test_render_prints_objects_with_secrets_redacted(
    marketplace_chart: Path, run: Run, helm4: Path
) -> None:
    result = run("render", chart=marketplace_chart)
    assert result.code == 0, result.err
    printed = [d for d in yaml.safe_load_all(result.out) if d]
    assert keys(printed) == keys(regular(helm_template(helm4, MARKETPLACE_CHART)))
    secret = next(d for d in printed if d["kind"] == "Secret")
    assert secret["stringData"]["key"].startswith("<redacted")
    assert SECRET_SENTINEL not in result.out
    with_tests = run("render", "--tests", "--show-secrets", chart=marketplace_chart)
    assert (("Pod", f"{RELEASE}-test-ready")) in keys(list(yaml.safe_load_all(with_tests.out)))
    assert SECRET_SENTINEL in with_tests.out


def test_render_of_the_chart_shows_what_a_marketplace_deploy_applies(run: Run, helm4: Path) -> None:
    result = run("render")
    assert result.code == 0, result.err
    printed = [d for d in yaml.safe_load_all(result.out) if d]
    assert keys(printed) == keys(regular(helm_template(helm4, CHART_DIR)))
    (application,) = [d for d in printed if d["kind"] == "Application"]
    assert application["metadata"]["name"] == RELEASE
    secret = next(d for d in printed if d["metadata"]["name"] == ADMIN_KEY_SECRET)
    assert secret["data"]["admin-key"].startswith("<redacted")
    assert secret["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/ssa"] == "IfNotPresent"


def test_values_may_be_nested_or_dotted(run: Run, tmp_path: Path) -> None:
    nested = write_values(tmp_path, server={"logVerbose": 2})
    dotted = tmp_path / "dotted.yaml"
    dotted.write_text(
        nested.read_text().replace("server:\n  logVerbose: 2", "server.logVerbose: 2")
    )
    assert "server.logVerbose" in dotted.read_text()
    outputs = [run("render", values=v).out for v in (nested, dotted)]
    assert outputs[0] == outputs[1]
    assert "--log-verbose=2" in outputs[0]


def test_an_unreachable_cluster_is_a_clear_exit_1(run: Run, emulator: EmulatedCluster) -> None:
    emulator.stop()
    result = run("deploy")
    assert result.code == 1
    assert f"cannot reach the Kubernetes API at {emulator.url}" in result.err
    assert "Traceback" not in result.err


def test_a_timeout_is_reported_even_when_events_cannot_be_read(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster
) -> None:
    emulator.set_controllers({"Deployment": deployment_stuck})
    emulator.fail("Event", "", status=403, message="events is forbidden")
    result = run("deploy", "--timeout", "6", chart=marketplace_chart)
    assert result.code == 1
    assert f"Deployment/{RELEASE}: 0/1 replicas available" in result.err
    assert "cannot list Event: 403 Forbidden: events is forbidden" in result.err


ADMIN_KEY_SECRET = f"{RELEASE}-triton-inference-server-admin-key"


def test_a_live_key_secret_without_the_charts_key_is_applied_over(
    run: Run, emulator: EmulatedCluster
) -> None:
    emulator.set_controllers(HEALTHY)
    emulator.add(
        f"api/v1/namespaces/{NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ADMIN_KEY_SECRET},
            "data": {"old-key": "b2xk"},
        },
    )
    result = run("deploy", "--timeout", "10")
    assert result.code == 0, result.err
    assert f"applied Secret/{ADMIN_KEY_SECRET}" in result.out
    live = emulator.find("Secret", ADMIN_KEY_SECRET)
    assert live is not None and live["data"].get("admin-key")


def test_a_redeploy_leaves_the_autoscalers_replicas_alone(
    run: Run, emulator: EmulatedCluster, tmp_path: Path
) -> None:
    emulator.set_controllers(HEALTHY)
    autoscaled = write_values(
        tmp_path, **{"autoscaling.enabled": True, "autoscaling.metric": "gpuDutyCycle"}
    )
    assert run("deploy", "--timeout", "10", values=autoscaled).code == 0
    name = f"{RELEASE}-triton-inference-server"
    deployment = emulator.find("Deployment", name)
    assert deployment is not None and "replicas" not in deployment["spec"]
    assert emulator.find("HorizontalPodAutoscaler", name) is not None
    # The autoscaler scales to 3 under its own field manager.
    configuration = client.Configuration()
    configuration.host = emulator.url
    with Cluster(
        client.ApiClient(configuration), namespace=NAMESPACE, field_manager="autoscaler"
    ) as hpa:
        hpa.merge_patch(ObjectRef("apps/v1", "Deployment", name), {"spec": {"replicas": 3}})
    again = run("deploy", "--timeout", "10", values=autoscaled)
    assert again.code == 0, again.err
    deployment = emulator.find("Deployment", name)
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    assert f"Deployment/{name}: 3/3 replicas available" in again.out
