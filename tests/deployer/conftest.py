"""Fixtures for the deployer: a Kubernetes API emulator per test, a kubeconfig pointing at it,
and a ``run`` helper that calls the real command line and captures what it prints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deployer import values
from deployer.cli import main
from deployer.cluster import Cluster
from tests.conftest import CHART_DIR, CRDS_DIR, ROOT
from tests.deployer.emulated_cluster import EmulatedCluster

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MARKETPLACE_CHART = FIXTURES / "marketplace-chart"
SCHEMA = ROOT / "schema.yaml"
TEST_SCHEMA = ROOT / "deployer" / "marketplace" / "test-schema.yaml"
"""What ``mpdev verify`` lays over the schema (``/data-test/schema.yaml`` in the image)."""
NAMESPACE = "triton"
RELEASE = "triton-test"


@pytest.fixture
def emulator() -> Iterator[EmulatedCluster]:
    """A fresh API server for each test (starting one takes a few milliseconds)."""
    cluster = EmulatedCluster(crds_dir=CRDS_DIR)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kubeconfig(emulator: EmulatedCluster, tmp_path: Path) -> Path:
    """A kubeconfig whose only context is the emulator."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": emulator.url}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}
                ],
                "current-context": "emulator",
            }
        )
    )
    return path


@pytest.fixture
def cluster(emulator: EmulatedCluster) -> Iterator[Cluster]:
    """The deployer's cluster module, talking to the emulator."""
    configuration = client.Configuration()
    configuration.host = emulator.url
    with Cluster(client.ApiClient(configuration), namespace=NAMESPACE) as connected:
        yield connected


BASE_VALUES: dict[str, object] = {
    "name": RELEASE,
    "namespace": NAMESPACE,
    "modelRepository": "gs://bucket/models",
}
"""What every test deploy is given; the schema's defaults fill in the rest."""


def write_values(directory: Path, **values: object) -> Path:
    """A Marketplace-style values file: BASE_VALUES and ``values``."""
    path = directory / "values.yaml"
    document = {**BASE_VALUES, **values}
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass
class Result:
    """What one run of the command line did."""

    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(kubeconfig: Path, helm4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``triton-gke-deployer COMMAND`` against the emulator; keyword arguments become
    ``--flag value`` (``values=`` a path, else a values file from ``write_values``)."""

    def call(
        command: str, *extra: str, chart: Path = CHART_DIR, values: Path | None = None
    ) -> Result:
        values_file = values or write_values(tmp_path)
        argv = [
            command,
            "--values",
            str(values_file),
            "--schema",
            str(SCHEMA),
            "--chart",
            str(chart),
            "--helm",
            str(helm4),
        ]
        if command != "render":
            argv += ["--kubeconfig", str(kubeconfig), "--poll-interval", "0.01"]
        code = main([*argv, *extra])
        captured = capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err)

    return call


@pytest.fixture(scope="module")
def schema_doc() -> dict[str, Any]:
    """schema.yaml as written."""
    return dict(yaml.safe_load(SCHEMA.read_text()))


@pytest.fixture(scope="module")
def schema() -> values.Schema:
    """schema.yaml as the deployer reads it."""
    return values.load_schema(SCHEMA)
