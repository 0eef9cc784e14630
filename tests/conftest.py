"""Fixtures shared by every test folder: paths to the real tools the Makefile installs."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from kubernetes import client

from common.helm_pins import helm_binary
from samples.bert.build_settings import BuildSettings
from samples.bert.network import SquadLogits, random_network
from samples.bert.repository import write_repository
from samples.bert.upload import Destination, upload_repository
from scripts.image_tools import Buildah
from standins.gcs_emulator import running_emulator
from standins.kube.control_plane import (
    ControlPlane,
    missing_prerequisite,
    running_control_plane_with_crds,
)
from standins.kube.kubelet import KubeletStandIn, add_standard_nodes
from standins.kube.metrics.server import MetricsApi, serving_metrics_api
from standins.kube.nodes import GPU_RESOURCE
from tests.deployer import images
from tests.kube.node import (
    NODE_ADDRESS,
    SAMPLE_REPOSITORY,
    RealNode,
    missing_node_prerequisite,
    pods_reach_storage,
    running_node,
)
from tests.kube.node_images import NodeImages, publish_all
from tests.tiers import RENDER_TOOLS, TIERS, measures_rates, stale_tier_entries, tier_of

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "chart"
SHARED_DIR = ROOT.parent / "shared"
CRDS_DIR = SHARED_DIR / "crds"


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where every prerequisite must be present."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """A prerequisite is missing: skip the calling test with ``reason`` (a plain clone without
    ``../shared`` beside it), but fail it where CI runs, so a missing step never passes unseen."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing prerequisite fails the test)", pytrace=False)
    pytest.skip(reason)


def require_crds() -> Path:
    """``../shared/crds``, or :func:`unavailable` with the reason where it is absent."""
    if not CRDS_DIR.is_dir():
        unavailable(f"{CRDS_DIR} is absent: the custom resource definitions are not available")
    return CRDS_DIR


def _tool(env_var: str, default: Path) -> Path:
    path = Path(os.environ.get(env_var) or default)
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        found = shutil.which(str(path))
        if found is None:
            pytest.fail(f"{path} is missing: run `make tools` (or set {env_var})")
        path = Path(found)
    return path


HELM_BINARIES = {
    "helm3": ("HELM3", helm_binary("helm3")),
    "helm4": ("HELM4", helm_binary("helm4")),
}
"""Each helm: the variable that may name another binary, and where ``make tools`` puts the
pinned one (``scripts/helm-pins.toml``)."""
HELM3 = helm_binary("helm3")
HELM4 = helm_binary("helm4")


def helm_path(name: str) -> Path:
    """The real binary of ``name`` (``helm3`` or ``helm4``), for tests that run both at once."""
    env_var, default = HELM_BINARIES[name]
    return _tool(env_var, default)


@pytest.fixture(scope="session", params=sorted(HELM_BINARIES))
def helm(request: pytest.FixtureRequest) -> Path:
    """Each real helm binary in turn: every chart test runs with Helm 3 and with Helm 4."""
    env_var, default = HELM_BINARIES[request.param]
    return _tool(env_var, default)


@pytest.fixture(scope="session")
def helm4() -> Path:
    """The helm the deployer image ships (Helm 4)."""
    env_var, default = HELM_BINARIES["helm4"]
    return _tool(env_var, default)


def _module_path(item: pytest.Item) -> str:
    return item.path.relative_to(ROOT).as_posix()


def _tier(item: pytest.Item) -> str:
    return tier_of(_module_path(item), frozenset(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (tests/tiers.py), and ``rates`` where it measures rates, so
    ``-m`` selects lanes. Within one run, tests on the control plane run last (in the order
    pytest chose for them): once started it keeps part of a core busy until the session ends,
    and the load tests that measure rates before it should not share the machine with it.
    Where the whole tree was collected, every entry of the tier tables must still name a test."""
    for item in items:
        item.add_marker(getattr(pytest.mark, _tier(item)))
        if measures_rates(item.nodeid):
            item.add_marker(pytest.mark.rates)
    items.sort(key=lambda item: "control_plane" in getattr(item, "fixturenames", ()))
    if {Path(arg).resolve() for arg in config.args} == {ROOT / "tests"}:
        stale = stale_tier_entries({item.nodeid for item in items})
        if stale:
            raise pytest.UsageError(
                "tests/tiers.py names tests that do not exist (renamed or removed?): "
                + ", ".join(stale)
            )


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: the {tier} tier (tests/tiers.py)")
    config.addinivalue_line("markers", "rates: measures rates or timings; runs alone")


@pytest.fixture(autouse=True)
def _render_tier_stays_render(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render-tier test may run helm and linters but start no server: listening on a socket
    or starting another program fails it with what to change, so the tier table stays true."""
    if _tier(request.node) != "render":
        return
    where = f"{_module_path(request.node)} is in the render tier (tests/tiers.py)"

    def listen(self: socket.socket, *args: Any) -> None:
        raise RuntimeError(f"{where} but listens on a socket: add it to TIER_BY_MODULE")

    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def checked_execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any) -> None:
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        program = Path(os.fsdecode(argv[0]).split()[0]).name
        if program not in RENDER_TOOLS:
            raise RuntimeError(f"{where} but runs {program}: add it to TIER_BY_MODULE")
        execute_child(self, args, *rest)

    monkeypatch.setattr(socket.socket, "listen", listen)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", checked_execute_child)


# -- the real Kubernetes control plane (../shared/k8s) and its kubelet stand-in ----------------


@contextlib.contextmanager
def _control_plane_with_crds(workdir: Path) -> Iterator[ControlPlane]:
    """A control plane with every CRD the chart's objects need; skips the calling test with
    the reason where the binaries or etcd are missing."""
    reason = missing_prerequisite()
    if reason:
        unavailable(reason)
    with running_control_plane_with_crds(workdir) as plane:
        yield plane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.36.2 on loopback,
    shared by the whole session, with every CRD the chart's objects need installed; stopped
    (by the PIDs it started) at the end, whatever happened. Skips with the reason where the
    binaries or etcd are missing."""
    with _control_plane_with_crds(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def image_store() -> Buildah:
    """buildah on the tests' own container store, with the stand-in base image in it (made
    once per machine: tests/deployer/images.py). Skips with the reason where buildah and its
    companions are missing (`make debian-packages`)."""
    reason = images.missing_image_prerequisite()
    if reason:
        unavailable(reason)
    store = images.image_store()
    images.ensure_base(store)
    return store


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[images.LocalRegistry]:
    """Debian's docker-registry on 127.0.0.1:80, for the session. Skips with the reason where
    the port is taken."""
    reason = images.missing_image_prerequisite() or images.registry_port_taken()
    if reason:
        unavailable(reason)
    with images.running_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def node_images(image_store: Buildah, image_registry: images.LocalRegistry) -> NodeImages:
    """The real node's images (Triton for CPU nodes, curl, Locust: tests/kube/node_images.py),
    made once per machine and pushed to the session's registry under the names the chart's
    values give them."""
    return publish_all(image_store, image_registry.host)


NODE_CAPACITY = {"cpu": "48", "memory": "192Gi", "pods": "110", GPU_RESOURCE: "4"}
"""A GKE ``g2-standard-48``: four L4 GPUs, room for a rollout's extra Triton pod beside the
Marketplace deploys."""


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    """This machine's one real node (kubelet, containerd, kube-proxy: ``../shared/k8s/node.sh``)
    on a control plane of its own, started as ``control_plane`` is (the kubelet stand-in's fake
    nodes must not receive its pods), sized as a GKE ``nvidia-l4`` node (``NODE_CAPACITY``),
    pulling from a plain-HTTP registry named ``localhost`` (port 80). Started once a session,
    for every test that runs pods for real; stopped, node and control plane, at its end. Skips
    with the reason where a node cannot start here (not root, tools missing, another node
    running)."""
    reason = missing_node_prerequisite()
    if reason:
        unavailable(reason)
    with (
        _control_plane_with_crds(tmp_path_factory.mktemp("node-plane")) as plane,
        running_node(plane, http_registries=["localhost"], capacity=NODE_CAPACITY) as node,
    ):
        yield node


@dataclass(frozen=True)
class NodeSample:
    """The BERT sample as the real node's pods read it."""

    repository: str
    """``gs://...``: the repository in the node's Cloud Storage."""
    network: SquadLogits
    """The same network in this process: what the served answers must be."""
    storage: str
    """The Cloud Storage endpoint (the emulator on the node's address)."""


SAMPLE_SEED = 11


@pytest.fixture(scope="session")
def node_sample(
    real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeSample]:
    """The README's first two steps for the real node: the BERT sample's python variant (tiny
    random weights, the torch runtime on a CPU) built with ``samples.bert`` and uploaded with
    its uploader to Cloud Storage (the GCS emulator on the node's address), which every pod of
    the node's cluster reaches (tests/kube/node.py)."""
    from google.cloud import storage

    work = tmp_path_factory.mktemp("node-sample")
    with running_emulator(work / "emulator.log", host=NODE_ADDRESS) as endpoint:
        settings = BuildSettings(
            variant="python",
            repository=work / "models",
            size="tiny",
            seed=SAMPLE_SEED,
            cpu_runtime="torch",
        )
        write_repository(settings, progress=lambda _: None)
        destination = Destination.parse(SAMPLE_REPOSITORY)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STORAGE_EMULATOR_HOST", endpoint)
            patch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            storage.Client().create_bucket(destination.bucket)
            upload_repository(settings.repository, SAMPLE_REPOSITORY, progress=lambda _: None)
        with pods_reach_storage(real_node.plane, endpoint):
            yield NodeSample(
                repository=SAMPLE_REPOSITORY,
                network=random_network("tiny", seed=SAMPLE_SEED),
                storage=endpoint,
            )


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[KubeletStandIn]:
    """The kubelet stand-in, with a CPU node and an ``nvidia-l4`` GPU node (one GPU) ready.
    Tests that depend on capacity add node pools of their own."""
    stand_in = KubeletStandIn(control_plane.api_client())
    stand_in.start()
    try:
        add_standard_nodes(stand_in)
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="session")
def metrics_api(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetricsApi]:
    """The custom and external metrics APIs, answered as GKE's Stackdriver adapter answers them
    from series the tests script (standins/kube/metrics/server.py), registered with the control
    plane as an aggregated API; unregistered before the control plane stops."""
    workdir = tmp_path_factory.mktemp("metrics-api")
    with serving_metrics_api(control_plane.api_client(), workdir) as api:
        yield api


_namespace_numbers = itertools.count(1)


@contextlib.contextmanager
def restricted_namespace(plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace whose pods must meet Pod Security "restricted" (enforced by the real
    admission), deleted afterwards (not waited for: the namespace controller finishes it)."""
    name = f"t{next(_namespace_numbers)}-{os.getpid() % 10000}"
    api: Any = client.CoreV1Api(plane.api_client())
    api.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            api.delete_namespace(name)


@pytest.fixture
def k8s_namespace(control_plane: ControlPlane, kubelet: KubeletStandIn) -> Iterator[str]:
    """A fresh Pod-Security-"restricted" namespace (see :func:`restricted_namespace`)."""
    with restricted_namespace(control_plane) as name:
        yield name
