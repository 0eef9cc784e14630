"""The chart's Triton running for real: on the real node (tests/kube/node.py), Triton 2.51 built
for CPU nodes (tests/kube/node_images.py) serves the BERT sample from Cloud Storage (the GCS
emulator the node's pods reach, as GKE's pods reach Cloud Storage: the repository is a
``gs://`` path), installed with ``helm install --wait`` into a namespace that enforces Pod
Security "restricted", with chart/ci/70-local-cpu-image-values.yaml, whose only values are
images. The node is faked as a GKE L4 node (GPU capacity by status patch); Triton runs the
sample's CPU instances. One release serves the module.

Cases:
- the install waits for the warm model: the pod turns Ready only after Triton logged the model
  loaded (Triton runs the model's warm-up inside the load: tests/samples/test_warmup.py), its
  config carrying the warm-up; it runs as uid 1000 on a read-only root filesystem;
- inference through the release's Service (its ClusterIP, as a pod calls it): the sample's
  client checks each answer, and the logits are the network's own (binary and JSON encodings);
- the admin API is refused through the Service without the key or with a wrong one, over HTTP
  and gRPC, and served with the key from the release's Secret; health stays open;
- ``helm test`` runs the chart's test pod against the Service, by name, and passes;
- a rollout (``helm upgrade``) under a bounded load through the Service fails no request: the
  new pod is ready before the old one is deleted, the old one keeps serving through its drain
  (preStop) and Triton then exits cleanly;
- the load-test chart (locust/chart; Locust's image built here) runs its master and worker
  against the release's Service and reports requests and no failure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import urllib3
from kubernetes import client, watch
from tritonclient.utils import InferenceServerException

from samples.bert import client as bert
from samples.bert import contract
from scripts.locust_bundle import write_bundle
from standins.kube.control_plane import ControlPlane, wait_until
from tests.chart.cluster import helm_run, wait_flags
from tests.conftest import CHART_DIR, ROOT, NodeSample, restricted_namespace
from tests.kube.node import RealNode
from tests.kube.node_images import CHART_VALUES, NodeImages
from tests.samples.helpers import expected_logits, http_post, served_logits

RELEASE = "triton"
SERVICE = f"{RELEASE}-triton-inference-server"
HEADER = "triton-admin-key"
LOAD_THREADS = 3
ROLLOUT_LIMIT_S = 240.0
"""The most a rollout may take: a new pod's start and warm-up, the old one's drain (15 s)."""


@dataclass(frozen=True)
class Served:
    """The installed release."""

    plane: ControlPlane
    namespace: str
    address: str
    """The Service's ClusterIP."""
    admin_key: str
    install_s: float

    @property
    def url(self) -> str:
        return f"http://{self.address}:8000"


def _core(plane: ControlPlane) -> Any:
    return client.CoreV1Api(plane.api_client())


def _settings(sample: NodeSample) -> list[str]:
    return ["-f", str(CHART_VALUES), "--set", f"modelRepository={sample.repository}"]


@pytest.fixture(scope="module")
def served(
    real_node: RealNode, node_images: NodeImages, node_sample: NodeSample, helm4: Path
) -> Iterator[Served]:
    plane = real_node.plane
    with restricted_namespace(plane) as namespace:
        started = time.monotonic()
        helm_run(
            helm4, plane, "install", RELEASE, str(CHART_DIR), "-n", namespace,
            *_settings(node_sample), *wait_flags(helm4),
        )  # fmt: skip
        install_s = time.monotonic() - started
        print(f"helm install --wait (image pull, start, model load and warm-up): {install_s:.1f} s")
        core = _core(plane)
        secret = core.read_namespaced_secret(f"{SERVICE}-admin-key", namespace)
        yield Served(
            plane=plane,
            namespace=namespace,
            address=core.read_namespaced_service(SERVICE, namespace).spec.cluster_ip,
            admin_key=base64.b64decode(secret.data["admin-key"]).decode(),
            install_s=install_s,
        )
        # Not waited for: the pod's drain would only keep the session's node busy.
        helm_run(helm4, plane, "uninstall", RELEASE, "-n", namespace)


def _triton_pods(served: Served) -> list[Any]:
    pods: list[Any] = (
        _core(served.plane)
        .list_namespaced_pod(
            served.namespace, label_selector=f"app.kubernetes.io/instance={RELEASE}"
        )
        .items
    )
    return [p for p in pods if p.metadata.name.startswith(f"{SERVICE}-")]


def _request(
    url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    if body is not None:
        return http_post(url, body, headers or {})[:2]
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _triton_log_time(line: str, year: int) -> datetime:
    """When a Triton log line (``I1207 03:29:11.446130 1 file.cc:839] ...``) was written, in
    the container's time zone (UTC: the image sets none)."""
    found = re.match(r"^[IWE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+) ", line)
    assert found, line
    month, day, hour, minute, second, fraction = found.groups()
    micro = int(fraction.ljust(6, "0")[:6])
    return datetime(year, int(month), int(day), int(hour), int(minute), int(second), micro, UTC)


def test_the_install_waits_for_the_warm_model(served: Served) -> None:
    (pod,) = _triton_pods(served)
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    (status,) = pod.status.container_statuses
    started = status.state.running.started_at
    log = served.plane.run_kubectl("logs", pod.metadata.name, "-n", served.namespace).stdout
    (loaded,) = [line for line in log.splitlines() if "successfully loaded 'bert'" in line]
    loaded_at = _triton_log_time(loaded, started.year)
    print(f"started {started}, model loaded {loaded_at}, Ready {ready.last_transition_time}")
    # Conditions carry whole seconds.
    assert started <= loaded_at
    assert ready.last_transition_time >= loaded_at.replace(microsecond=0)
    status_code, body = _request(
        f"{served.url}/v2/models/bert/config", headers={HEADER: served.admin_key}
    )
    assert status_code == 200, body
    assert [w["batch_size"] for w in json.loads(body)["model_warmup"]] == [1, 32]

    def run(*command: str) -> str:
        return served.plane.run_kubectl(
            "exec", pod.metadata.name, "-n", served.namespace, "-c", "triton", "--", *command
        ).stdout

    assert run("id", "-u").strip() == "1000"
    attempt = run("sh", "-c", "touch /opt/tritonserver/x 2>&1; touch /tmp/x && echo tmp-ok")
    assert "Read-only file system" in attempt and "tmp-ok" in attempt, attempt


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_inference_through_the_service(
    served: Served, node_sample: NodeSample, encoding: str
) -> None:
    for batch_size, seed in ((1, 1), (8, 2)):
        (batch,) = bert.make_batches(
            count=1, batch_size=batch_size, seq_len=contract.SEQUENCE_LENGTH, seed=seed
        )
        np.testing.assert_allclose(
            served_logits(served.url, batch, encoding=encoding),
            expected_logits(node_sample.network, dict(batch.named())),
            rtol=1e-4,
            atol=1e-4,
        )


def test_the_admin_api_is_refused_through_the_service(served: Served) -> None:
    index = f"{served.url}/v2/repository/index"
    assert _request(index, body=b"{}")[0] == 403
    assert _request(index, body=b"{}", headers={HEADER: "wrong"})[0] == 403
    status, body = _request(index, body=b"{}", headers={HEADER: served.admin_key})
    assert status == 200
    assert [(m["name"], m["state"]) for m in json.loads(body)] == [("bert", "READY")]
    assert _request(f"{served.url}/v2/health/ready")[0] == 200
    grpc = grpcclient.InferenceServerClient(f"{served.address}:8001")
    try:
        with pytest.raises(InferenceServerException, match="restricted"):
            grpc.get_model_repository_index(client_timeout=10)
        listed = grpc.get_model_repository_index(
            headers={f"triton-grpc-protocol-{HEADER}": served.admin_key},
            as_json=True,
            client_timeout=10,
        )
        assert [m["name"] for m in listed["models"]] == ["bert"]
    finally:
        grpc.close()


def test_helm_test_passes_against_the_real_server(served: Served, helm4: Path) -> None:
    tested = helm_run(
        helm4, served.plane, "test", RELEASE, "-n", served.namespace, "--timeout=180s"
    )
    assert f"TEST SUITE:     {SERVICE}-test-ready" in tested.stdout, tested.stdout
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout


@dataclass
class Load:
    """A bounded load through the Service: threads sending the sample's requests, each on a
    connection of its own, until stopped; every answer checked."""

    url: str
    threads: int = LOAD_THREADS
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    last_success: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _send(self, seed: int) -> None:
        (batch,) = bert.make_batches(count=1, batch_size=2, seq_len=128, seed=seed)
        while not self._stop.is_set():
            try:
                served_logits(self.url, batch)
                failure = None
            except (OSError, bert.UnexpectedResponseError) as error:
                failure = f"{time.strftime('%H:%M:%S')} {error!r}"
            with self._lock:
                self.requests += 1
                if failure:
                    self.failures.append(failure)
                else:
                    self.last_success = time.monotonic()

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        workers = [
            threading.Thread(target=self._send, args=(seed,), daemon=True)
            for seed in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(timeout=30)


class PodEnds:
    """What the API server reports of pods of a namespace until they are gone: each container's
    last terminated state, and when each pod's deletion began. The watch is taken as plain JSON
    (a client model that rejects a field must not end it) and resumed when its connection
    breaks; what broke it is kept for the failure message."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self._core = _core(plane)
        self._namespace = namespace
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._stopped = threading.Event()
        self.deleting: dict[str, datetime] = {}
        self.terminated: dict[str, dict[str, Any]] = {}
        self.gone: set[str] = set()
        self.watch_errors: list[str] = []
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self._core.list_namespaced_pod,
                    self._namespace,
                    timeout_seconds=600,
                    deserialize=False,
                ):
                    self._record(event["type"], event["object"])
            except Exception as error:  # any break is resumed, and reported
                self.watch_errors.append(f"{time.strftime('%H:%M:%S')} {error!r}"[:300])
                self._stopped.wait(1)

    def _record(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod.get("metadata", {})
        name = metadata.get("name", "")
        if metadata.get("deletionTimestamp"):
            # The timestamp is when the grace period ends; the deletion began one grace
            # period before.
            grace = timedelta(seconds=metadata.get("deletionGracePeriodSeconds") or 0)
            self.deleting.setdefault(name, _api_time(metadata["deletionTimestamp"]) - grace)
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status.get("state", {}).get("terminated"):
                self.terminated[name] = status["state"]["terminated"]
        if kind == "DELETED":
            self.gone.add(name)

    def is_gone(self, name: str) -> bool:
        """Whether the pod ``name`` is gone: seen deleted, or no longer found."""
        if name in self.gone:
            return True
        try:
            self._core.read_namespaced_pod(name, self._namespace)
        except client.ApiException as error:
            if error.status == 404:
                self.gone.add(name)
                return True
            return False  # a busy API server's error: asked again
        except (OSError, urllib3.exceptions.HTTPError):
            return False
        return False

    def describe(self, name: str) -> str:
        """The pod's state and its events, for a failure message."""
        try:
            pod = self._core.read_namespaced_pod(name, self._namespace)
            state = (
                f"phase {pod.status.phase}, deletion {pod.metadata.deletion_timestamp}, "
                f"containers {[s.state.to_dict() for s in pod.status.container_statuses or []]}"
            )
        except client.ApiException as error:
            state = f"read: HTTP {error.status}"
        events = self._core.list_namespaced_event(
            self._namespace, field_selector=f"involvedObject.name={name}"
        ).items
        said = [f"{e.reason}: {e.message}" for e in events[-10:]]
        return f"{name}: {state}; events {said}; watch errors {self.watch_errors[-5:]}"

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]


def _api_time(stamp: str) -> datetime:
    """An API server timestamp (RFC 3339, ``2026-12-07T03:29:11Z``) as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_rollout_under_load_fails_no_request(
    served: Served, node_sample: NodeSample, helm4: Path
) -> None:
    (old,) = _triton_pods(served)
    ends = PodEnds(served.plane, served.namespace)
    started = time.monotonic()
    try:
        with Load(served.url).running() as load:
            wait_until("the load's first answers", lambda: load.requests >= LOAD_THREADS)
            helm_run(
                helm4, served.plane, "upgrade", RELEASE, str(CHART_DIR), "-n", served.namespace,
                *_settings(node_sample), "--set-string", "podAnnotations.rollout=1",
                *wait_flags(helm4),
            )  # fmt: skip
            try:
                wait_until(
                    f"the old pod {old.metadata.name} gone",
                    lambda: ends.is_gone(old.metadata.name),
                    timeout_s=ROLLOUT_LIMIT_S,
                )
            except TimeoutError as error:
                raise AssertionError(f"{error}; {ends.describe(old.metadata.name)}") from None
            # A moment more through the new pod alone.
            time.sleep(2)
    finally:
        ends.stop()
    took = time.monotonic() - started
    print(
        f"rollout under load: {load.requests} requests over {took:.0f} s "
        f"({LOAD_THREADS} threads), {len(load.failures)} failed"
    )
    assert load.failures == [], load.failures[:10]
    assert load.requests > 0 and time.monotonic() - load.last_success < 10
    (new,) = _triton_pods(served)
    assert new.metadata.name != old.metadata.name
    terminated = ends.terminated.get(old.metadata.name)
    assert terminated is not None, "the old pod's end was not seen"
    # The drain (preStop: drainSeconds, 15 s by default) before Triton's SIGTERM, then a clean exit.
    drained = _api_time(terminated["finishedAt"]) - ends.deleting[old.metadata.name]
    print(
        f"old pod: exit code {terminated['exitCode']}, {drained.total_seconds():.0f} s after "
        "deletion"
    )
    assert terminated["exitCode"] == 0, terminated
    assert drained.total_seconds() >= 15


@pytest.fixture(scope="module")
def locust_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """locust/chart with its bundle written, as `make locust-bundle` writes it."""
    chart = tmp_path_factory.mktemp("charts") / "triton-locust"
    shutil.copytree(ROOT / "locust" / "chart", chart, ignore=shutil.ignore_patterns("files"))
    write_bundle(chart / "files")
    return chart


def test_the_load_test_chart_runs_against_the_service(
    served: Served, node_images: NodeImages, locust_chart: Path, helm4: Path
) -> None:
    registry = node_images.published["locust"].split("/", 1)[0]
    helm_run(
        helm4, served.plane, "install", "load", str(locust_chart), "-n", served.namespace,
        "--set", f"image.registry={registry}", "--set", f"target.service={SERVICE}",
        "--set", "workers.replicas=1", "--set", "run.durationSeconds=15",
        "--set", "run.targetQps=20", "--set", "run.reportHoldSeconds=0",
    )  # fmt: skip
    batch: Any = client.BatchV1Api(served.plane.api_client())
    master = "load-triton-locust-master"

    def ended() -> Any:
        status = batch.read_namespaced_job(master, served.namespace).status
        return status if (status.succeeded or status.failed) else None

    try:
        status = wait_until("the Locust master's run ended", ended, timeout_s=240)
        log = served.plane.run_kubectl("logs", f"job/{master}", "-n", served.namespace).stdout
        assert status.succeeded, log
        (line,) = [line for line in log.splitlines() if "summary json " in line]
        summary = json.loads(line.split("summary json ", 1)[1])
        print(f"Locust in the cluster against the Service: {summary}")
        assert summary["requests"] >= 100 and summary["failures"] == 0, summary
    finally:
        helm_run(helm4, served.plane, "uninstall", "load", "-n", served.namespace, "--wait")
