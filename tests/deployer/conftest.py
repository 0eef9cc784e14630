"""Fixtures for the deployer: a Kubernetes API emulator per test, a kubeconfig pointing at it,
and a ``run`` helper that calls the real command line and captures what it prints."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deployer import formats, values
from deployer.cli import main
from deployer.cluster import Cluster
from scripts.image import Listing, Options, build_deployer, load_listing, push_all
from scripts.image_tools import Buildah, Built
from standins.emulator.cluster import EmulatedCluster
from tests.conftest import CHART_DIR, CRDS_DIR, ROOT
from tests.deployer import images
from tests.kube.node import SAMPLE_REPOSITORY
from tests.kube.node_images import CURL, TRITON, NodeImages
from tests.kube.node_images import tag as tag_image

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MARKETPLACE_CHART = FIXTURES / "marketplace-chart"
SCHEMA = ROOT / "schema.yaml"
TEST_SCHEMA = ROOT / "deployer" / "marketplace" / "test-schema.yaml"
"""What ``mpdev verify`` lays over the schema (``/data-test/schema.yaml`` in the image)."""
IMAGE_PARTS = formats.load_image_part_schemas(CHART_DIR)
"""The chart's image grammar, by Marketplace projection type, for schemas parsed by hand."""
PUBLISHED_VERSION = values.load_schema(SCHEMA, chart=CHART_DIR).published_version
"""The release's version as Marketplace reads it (schema.yaml), the images' tag."""
NAMESPACE = "triton"
RELEASE = "triton-test"


@pytest.fixture(scope="session")
def marketplace_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test-only Marketplace chart (``MARKETPLACE_CHART``) at the release's version, as
    the deployer refuses an Application whose version is not the schema's publishedVersion,
    with the chart's image grammar."""
    chart = tmp_path_factory.mktemp("fixture-chart") / MARKETPLACE_CHART.name
    shutil.copytree(MARKETPLACE_CHART, chart)
    manifest = chart / "Chart.yaml"
    document = yaml.safe_load(manifest.read_text())
    manifest.write_text(yaml.safe_dump({**document, "version": PUBLISHED_VERSION}))
    write_image_grammar(chart)
    return chart


def write_image_grammar(chart: Path) -> None:
    """Give a test chart the real chart's image grammar (its schema's ``definitions``, which
    the deployer reads to check Marketplace's image properties) and no other constraint."""
    grammar = json.loads((CHART_DIR / "values.schema.json").read_text())["definitions"]
    (chart / "values.schema.json").write_text(json.dumps({"definitions": grammar}))


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
    return values.load_schema(SCHEMA, chart=CHART_DIR)


# -- the listing's images, built and published as `make image` and `make push` do --------------


@dataclass(frozen=True)
class DeployerImage:
    """The deployer image ``make image`` builds, in the tests' store."""

    store: Buildah
    listing: Listing
    built: Built
    build_s: float
    """How long the build took (cached layers reused)."""

    @property
    def reference(self) -> str:
        """``localhost/APP/deployer:X.Y.Z``."""
        return self.built.tags[0]


@pytest.fixture(scope="session")
def deployer_image(image_store: Buildah) -> DeployerImage:
    """The deployer image, built by what ``make image`` runs (the pinned wheels put into the
    context, then a build with no network), named for the loopback registry, ``mpdev verify``
    deploying the BERT sample the real node's Cloud Storage holds (``make image
    VERIFY_MODEL_REPOSITORY=...``)."""
    listing = load_listing()
    started = time.monotonic()
    options = Options(registry=images.REGISTRY_HOST, verify_model_repository=SAMPLE_REPOSITORY)
    built = build_deployer(image_store, listing, options)
    return DeployerImage(
        store=image_store, listing=listing, built=built, build_s=time.monotonic() - started
    )


@pytest.fixture(scope="session")
def published_images(
    deployer_image: DeployerImage,
    image_registry: images.LocalRegistry,
    node_images: NodeImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """``make push REGISTRY=localhost``: the deployer, and the chart's Triton and tester
    images republished under it; here Triton is the real node's Triton behind the launcher of
    tests/deployer/images.py and the tester the node's curl image. Each pushed reference to its
    manifest digest."""
    listing, store = deployer_image.listing, deployer_image.store
    triton = node_images.cached[TRITON.name]
    store.build(
        images.listing_triton_build(listing, triton.reference, tmp_path_factory.mktemp("t"))
    )
    tag_image(store, node_images.cached[CURL.name], listing.sources["tester"])
    return push_all(store, listing, Options(registry=image_registry.host))
