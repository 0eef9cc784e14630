"""The load-test chart (``locust/chart``): one Locust master and N workers in the cluster,
rendered with both real helm binaries, every object validated against Kubernetes' schemas; and
its bundle run as the pods would mount it, on loopback against the real local Triton, with
numpy and tritonclient hidden (Locust's image has neither).

Cases: the bundle is the locustfile and the repository's modules it imports, found by following
its imports; without it the chart says how to write it; the ConfigMap mounted as the pods
mount it runs the master's and the workers' rendered commands (summary, `summary json`, HTML
report, no failures); both helms render the same objects; the target is the release's Service
(namespace defaulting to the release's) or a URL, never both or neither; a headless run carries
rate, duration, worker count and a deadline that covers it; an interactive one serves the web
UI on the pod's loopback only; every pod meets Pod Security "restricted" and workers spread over
nodes; the values schema refuses unknown keys and bad values, naming them; an ingress target's
Host header, CA (from a Secret or a ConfigMap, mounted in every pod), insecure switch and host
aliases reach the master's arguments and every pod, bad combinations refused with what to set;
the bundle as mounted runs through a real TLS edge (nginx) with the rendered Host header and CA,
its workers handed the master's options; the main chart and the deployer never refer to this
chart; installed on the real control plane in a namespace that
enforces "restricted", the master and every worker are admitted and scheduled, the workers on
three different nodes, and the NOTES name the release's objects.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from demo.local import LocalTriton
from loadtest.load_summary import LoadSummary, summarize_file
from scripts.locust_bundle import write_bundle
from standins.ingress import NginxIngress, Pki
from standins.kube.control_plane import ControlPlane, wait_until
from standins.kube.kubelet import KubeletStandIn
from standins.locust_cluster import ClusterRun, LocalLocustCluster
from tests.chart.cluster import helm_run
from tests.chart.helpers import HelmFailedError, Manifest, field, only, render_chart
from tests.conftest import CHART_DIR, HELM_BINARIES, ROOT, _tool
from tests.locust.conftest import HOST

SERVICE = "triton-triton-inference-server"
TARGET = {"target": {"service": SERVICE}}


@pytest.fixture(scope="session")
def locust_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of locust/chart with its bundle written, as `make locust-bundle` writes it (the
    working tree's own files/ folder is left alone)."""
    chart = tmp_path_factory.mktemp("charts") / "triton-locust"
    shutil.copytree(ROOT / "locust" / "chart", chart, ignore=shutil.ignore_patterns("files"))
    write_bundle(chart / "files")
    return chart


def render(helm: Path, chart: Path, values: dict[str, Any] | None = None) -> list[Manifest]:
    return render_chart(
        helm,
        TARGET if values is None else values,
        chart=chart,
        release="load",
        namespace="loadtest",
    )


def pod_specs(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Pod template specs by Job component (master, worker)."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] == "Job"
    }


def master_args(manifests: list[Manifest]) -> list[str]:
    """The master's Locust arguments (after the shell script and its $0)."""
    args: list[str] = field(pod_specs(manifests)["master"], "containers[name=master].args")
    assert args[1] == "locust", args
    return args[2:]


def test_bundle_is_the_locustfile_and_what_it_imports(locust_chart: Path) -> None:
    files = sorted(
        str(p.relative_to(locust_chart / "files")) for p in (locust_chart / "files").rglob("*.py")
    )
    assert "locust/locustfile-bert-large.py" in files
    assert "samples/bert/contract.py" in files
    assert all(not name.startswith(("bench/", "deployer/", "tests/")) for name in files), files
    for name in files:
        assert (locust_chart / "files" / name).read_bytes() == (ROOT / name).read_bytes()


def test_without_the_bundle_the_chart_says_how_to_write_it(helm: Path, tmp_path: Path) -> None:
    chart = tmp_path / "triton-locust"
    shutil.copytree(ROOT / "locust" / "chart", chart, ignore=shutil.ignore_patterns("files"))
    with pytest.raises(HelmFailedError, match="run `make locust-bundle`"):
        render(helm, chart)


def test_both_helms_render_the_same(helm: Path, locust_chart: Path) -> None:
    others = [_tool(*spec) for spec in HELM_BINARIES.values()]
    renders = [render(h, locust_chart) for h in others]
    assert renders[0] == renders[1]
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in render(helm, locust_chart))
    assert kinds == [
        ("ConfigMap", "load-triton-locust"),
        ("Job", "load-triton-locust-master"),
        ("Job", "load-triton-locust-worker"),
        ("NetworkPolicy", "load-triton-locust-master"),
        ("NetworkPolicy", "load-triton-locust-worker"),
        ("Service", "load-triton-locust-master"),
    ]


def write_mounted_bundle(manifests: list[Manifest], folder: Path) -> Path:
    """The ConfigMap's files where the pods' volume puts them; returns the locustfile."""
    data = only(manifests, "ConfigMap")["data"]
    volume = field(pod_specs(manifests)["master"], "volumes[name=bundle].configMap")
    for item in volume["items"]:
        path = folder / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item["key"]])
    return folder / "locust" / "locustfile-bert-large.py"


def _run_mounted_bundle(
    locustfile: Path, host: str, args: list[str], tmp_path: Path
) -> tuple[ClusterRun, LoadSummary]:
    """The mounted bundle as the chart's master and two workers run it, on loopback without
    numpy or tritonclient; fails unless the run exits 0. Its summary (stats.json)."""
    with LocalLocustCluster(
        locustfile=locustfile,
        host=host,
        workers=2,
        out=tmp_path / "run",
        master_args=[*args, "--ready-timeout=20"],
        hidden_modules=("numpy", "tritonclient", "grpc"),
        cwd=tmp_path / "bundle",
    ) as cluster:
        run = cluster.wait(timeout_s=90)
    assert run.returncode == 0, run.master_output + "\n".join(run.worker_outputs)
    return run, summarize_file(tmp_path / "stats.json")


@pytest.mark.slow
def test_the_bundle_runs_as_mounted_without_numpy(
    triton: LocalTriton, locust_chart: Path, tmp_path: Path
) -> None:
    helm = _tool(*HELM_BINARIES["helm4"])
    values = {**TARGET, "run": {"targetQps": 40, "durationSeconds": 4, "stopTimeoutSeconds": 3}}
    manifests = render(helm, locust_chart, values)
    locustfile = write_mounted_bundle(manifests, tmp_path / "bundle")
    # The master's rendered arguments, less what the loopback cluster sets itself (bind
    # address, port, workers, target) and with the report paths moved here.
    own = ("--locustfile=", "--master", "--expect-workers", "--host=", "--ready-timeout=")
    args = [a for a in master_args(manifests) if not a.startswith(own)]
    args = [a.replace("/reports/", f"{tmp_path}/") for a in args]
    worker_args = field(pod_specs(manifests)["worker"], "containers[name=worker].args")
    assert [a.split("=")[0] for a in worker_args] == [
        "--locustfile", "--worker", "--master-host", "--master-port",
    ]  # fmt: skip
    run, summary = _run_mounted_bundle(locustfile, triton.http_url, args, tmp_path)
    # The rate is not the point here (the machine may be busy): requests answered, none failed.
    assert summary.requests >= 40 and summary.failures == 0, summary
    assert re.search(r"summary json \{.*\"p99_ms\"", run.master_output)
    assert "<html" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_the_bundle_runs_through_a_tls_edge_with_the_rendered_host_and_ca(
    ingress: NginxIngress, pki: Pki, locust_chart: Path, tmp_path: Path
) -> None:
    helm = _tool(*HELM_BINARIES["helm4"])
    url = ingress.url("tls", scheme="https")
    values = {
        "target": {"url": url, "hostHeader": HOST, "tls": {"caSecret": "triton-ca"}},
        "run": {"targetQps": 40, "durationSeconds": 4, "stopTimeoutSeconds": 3},
    }
    manifests = render(helm, locust_chart, values)
    locustfile = write_mounted_bundle(manifests, tmp_path / "bundle")
    # The Secret's key where the pods mount it, here a file of the test's.
    mounted = "--ca-file=/etc/locust-ca/ca.crt"
    args = master_args(manifests)
    assert f"--host={url}" in args and f"--host-header={HOST}" in args and mounted in args
    own = ("--locustfile=", "--master", "--expect-workers", "--host=", "--ready-timeout=")
    args = [a for a in args if not a.startswith(own)]
    args = [
        f"--ca-file={pki.ca}" if a == mounted else a.replace("/reports/", f"{tmp_path}/")
        for a in args
    ]
    before = ingress.requests_logged(200, HOST)
    _, summary = _run_mounted_bundle(locustfile, url, args, tmp_path)
    assert summary.requests >= 40 and summary.failures == 0, summary
    # The workers sent them through the edge for that host, over TLS with the CA.
    assert ingress.requests_logged(200, HOST) - before >= summary.requests


def _ca_volume(spec: Manifest) -> Manifest:
    return field(spec, "volumes[name=ca]")  # type: ignore[no-any-return]


def test_ingress_settings_reach_the_master_and_every_pod(helm: Path, locust_chart: Path) -> None:
    aliases = [{"ip": "34.1.2.3", "hostnames": ["t.example.com"]}]
    target = {"url": "https://34.1.2.3", "hostHeader": "t.example.com"}
    secret = render(
        helm,
        locust_chart,
        {"target": {**target, "tls": {"caSecret": "triton-ca"}}, "hostAliases": aliases},
    )
    args = master_args(secret)
    assert "--host-header=t.example.com" in args and "--ca-file=/etc/locust-ca/ca.crt" in args
    assert "--insecure" not in args
    for component, spec in pod_specs(secret).items():
        assert spec["hostAliases"] == aliases, component
        assert _ca_volume(spec)["secret"] == {
            "secretName": "triton-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }  # fmt: skip
        (container,) = spec["containers"]
        assert {"name": "ca", "mountPath": "/etc/locust-ca", "readOnly": True} in container[
            "volumeMounts"
        ]
    config_map = render(
        helm,
        locust_chart,
        {"target": {**target, "tls": {"caConfigMap": "trust", "caKey": "bundle.pem"}}},
    )
    for spec in pod_specs(config_map).values():
        assert _ca_volume(spec)["configMap"] == {
            "name": "trust", "items": [{"key": "bundle.pem", "path": "ca.crt"}],
        }  # fmt: skip
        assert "hostAliases" not in spec
    insecure = render(helm, locust_chart, {"target": {**target, "tls": {"insecure": True}}})
    assert "--insecure" in master_args(insecure)
    assert not any("--ca-file" in a for a in master_args(insecure))
    for spec in pod_specs(insecure).values():
        assert all(v["name"] != "ca" for v in spec["volumes"])
    plain = master_args(render(helm, locust_chart))
    assert not any(a.startswith(("--host-header", "--ca-file", "--insecure")) for a in plain)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"target": {"service": SERVICE, "tls": {"insecure": True}}},
            r"target\.tls applies to an https target\.url",
        ),
        (
            {"target": {"url": "https://t", "tls": {"caSecret": "a", "caConfigMap": "b"}}},
            r"caSecret and target\.tls\.caConfigMap are both set",
        ),
        (
            {"target": {"url": "https://t", "tls": {"caSecret": "a", "insecure": True}}},
            r"target\.tls\.insecure skips the check the CA is given for",
        ),
        ({"target": {"url": "https://t", "hostHeader": "https://t"}}, "hostHeader"),
        ({"target": {"url": "https://t", "tls": {"ca": "a"}}}, "additional properties 'ca'"),
        ({**TARGET, "hostAliases": [{"ip": "34.1.2.3"}]}, "missing property 'hostnames'"),
    ],
    ids=["tls-on-plain-http", "two-cas", "ca-and-insecure", "host-header-url", "unknown-tls-key",
         "alias-without-names"],
)  # fmt: skip
def test_bad_ingress_settings_are_refused(
    helm: Path, locust_chart: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailedError, match=message):
        render(helm, locust_chart, values)


def test_target_is_the_service_or_a_url(helm: Path, locust_chart: Path) -> None:
    def host(values: dict[str, Any]) -> str:
        args = master_args(render(helm, locust_chart, values))
        return next(a for a in args if a.startswith("--host="))

    assert host(TARGET) == f"--host=http://{SERVICE}.loadtest.svc:8000"
    other = {"target": {"service": SERVICE, "namespace": "serving", "port": 8080}}
    assert host(other) == f"--host=http://{SERVICE}.serving.svc:8080"
    assert host({"target": {"url": "http://34.1.2.3:80/"}}) == "--host=http://34.1.2.3:80"
    with pytest.raises(HelmFailedError, match=r"target\.service and target\.url are both set"):
        render(helm, locust_chart, {"target": {"service": SERVICE, "url": "http://34.1.2.3"}})
    with pytest.raises(HelmFailedError, match=r"set target\.service to the Triton release's"):
        render(helm, locust_chart, {})


def test_headless_run_carries_rate_duration_and_workers(helm: Path, locust_chart: Path) -> None:
    values = {
        **TARGET,
        "workers": {"replicas": 5},
        "run": {"targetQps": 20000, "durationSeconds": 900, "reportHoldSeconds": 300},
    }
    manifests = render(helm, locust_chart, values)
    args = master_args(manifests)
    for expected in (
        "--headless", "--target-qps=20000", "--run-time=900s", "--expect-workers=5",
        "--html=/reports/report.html", "--json-file=/reports/stats", "--load-shape=constant",
    ):  # fmt: skip
        assert expected in args
    worker_job = only(manifests, "Job", "-worker")["spec"]
    assert worker_job["parallelism"] == worker_job["completions"] == 5
    # The deadline covers the waits, the run, the stop and the report hold.
    deadline = 120 + 300 + 900 + 10 + 300
    for job in (m for m in manifests if m["kind"] == "Job"):
        assert job["spec"]["activeDeadlineSeconds"] > deadline
    script = field(pod_specs(manifests)["master"], "containers[name=master].args")[0]
    assert "sleep 300" in script and "exit $code" in script


def test_interactive_run_serves_the_web_ui_on_loopback(helm: Path, locust_chart: Path) -> None:
    manifests = render(helm, locust_chart, {**TARGET, "run": {"headless": False}})
    args = master_args(manifests)
    assert "--headless" not in args and "--web-host=127.0.0.1" in args
    master = field(pod_specs(manifests)["master"], "containers[name=master]")
    assert {p["name"]: p["containerPort"] for p in master["ports"]} == {"master": 5557, "web": 8089}
    assert master["args"][0] == 'exec locust "$@"'


def test_pods_meet_restricted_and_workers_spread(helm: Path, locust_chart: Path) -> None:
    manifests = render(helm, locust_chart)
    for component, spec in pod_specs(manifests).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, component
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert all("hostPath" not in v for v in spec["volumes"])
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True
    worker = pod_specs(manifests)["worker"]
    (spread,) = worker["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"].items() <= (
        only(manifests, "Job", "-worker")["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"run": {"qps": 1}}, "additional properties 'qps' not allowed"),
        ({"run": {"protocol": "grpc"}}, "protocol"),
        ({"workers": {"replicas": 0}}, "replicas"),
        ({"run": {"durationSeconds": "10m"}}, "durationSeconds"),
        ({"target": {"service": SERVICE, "url": "34.1.2.3"}}, "url"),
    ],
    ids=["unknown-key", "grpc", "no-workers", "duration-text", "url-without-scheme"],
)
def test_schema_refuses_bad_values(
    helm: Path, locust_chart: Path, values: dict[str, Any], message: str
) -> None:
    merged = {**TARGET, **values}
    with pytest.raises(HelmFailedError, match=message):
        render(helm, locust_chart, merged)


def test_the_main_chart_and_deployer_never_refer_to_it() -> None:
    names = ("triton-locust", "locust/chart")
    sources = [*CHART_DIR.rglob("*"), *(ROOT / "deployer").rglob("*.py"), ROOT / "schema.yaml"]
    found = [
        str(path.relative_to(ROOT))
        for path in sources
        if path.is_file() and any(name in path.read_text(errors="replace") for name in names)
    ]
    assert found == []


@pytest.mark.slow
def test_installs_in_a_restricted_namespace(
    helm: Path,
    locust_chart: Path,
    control_plane: ControlPlane,
    kubelet: KubeletStandIn,
    k8s_namespace: str,
) -> None:
    for index in range(3):
        kubelet.add_node(f"{k8s_namespace}-cpu-{index}", cpu="4", memory="16Gi")
    result = helm_run(
        helm,
        control_plane,
        "install", "load", str(locust_chart), "-n", k8s_namespace,
        "--set", f"target.service={SERVICE}", "--set", "workers.replicas=3",
    )  # fmt: skip
    # The NOTES' commands name this release's objects.
    assert f"kubectl -n {k8s_namespace} logs -f job/load-triton-locust-master" in result.stdout
    core: Any = client.CoreV1Api(control_plane.api_client())
    selector = "app.kubernetes.io/instance=load"

    def scheduled() -> dict[str, list[str]] | None:
        pods = core.list_namespaced_pod(k8s_namespace, label_selector=selector).items
        nodes: dict[str, list[str]] = {}
        for pod in pods:
            if not pod.spec.node_name:
                return None
            component = pod.metadata.labels["app.kubernetes.io/component"]
            nodes.setdefault(component, []).append(pod.spec.node_name)
        return nodes if sorted(map(len, nodes.values())) == [1, 3] else None

    # Admitted (a pod refused by Pod Security is never created) and placed by the scheduler.
    nodes = wait_until("the master and 3 workers scheduled", scheduled)
    assert len(set(nodes["worker"])) == 3, nodes
    listed = control_plane.run_kubectl(
        "-n", k8s_namespace, "get", "pods", "-l", selector, "-o", "wide"
    ).stdout
    assert listed.count("load-triton-locust-worker") == 3
    helm_run(helm, control_plane, "uninstall", "load", "-n", k8s_namespace)
