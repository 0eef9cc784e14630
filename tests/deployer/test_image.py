"""The deployer image as ``make image`` builds it and ``make push`` publishes it, read from the
image itself (its base a stand-in here: tests/deployer/images.py).

Cases:
- tagged publishedVersion and its track (X.Y.Z, X.Y) on one image; its entrypoint is
  Marketplace's ``/bin/deploy.sh`` with no command after it, its user 10001;
- inside: exactly the hashed requirements and the deployer in its virtual environment (no pip,
  no setuptools), helm at the pinned version, the chart, schema and test schema under /data and
  /data-test, both Marketplace entrypoints executable; no compiler, no build stage leftovers
  (wheels, sources, build environment), no tests, no virtual environment from the build
  machine;
- run with no arguments it is Marketplace's deploy: with no values mounted it exits 2 and says
  it could mark no Application, as ``deploy --marketplace-job`` does;
- ``--entrypoint triton-gke-deployer ... render`` still works, and what it renders passes
  Google's ``validate_app_resource.py`` (deploy-info annotation, version) against the image's
  own schema;
- after ``make push`` to the loopback registry, every image of the listing (deployer, Triton,
  tester; both tags) has the Marketplace service name in its OCI manifest's annotations, as
  ``skopeo inspect --raw`` shows it, both tags name one manifest, whose digest is what the push
  reported; the republished Triton and tester images keep their source's layers, and no
  working container is left behind.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.helm_pins import helm_pin
from scripts.image import ANNOTATION, DEPLOYER, IMAGE_HELM, Options, deployer_build
from scripts.image_requirements import RUNTIME
from tests.conftest import ROOT
from tests.deployer.conftest import PUBLISHED_VERSION, DeployerImage
from tests.deployer.google_tools import DEPLOYER_UTIL
from tests.deployer.images import PODMAN_RUN, LocalRegistry, podman

TESTS = ROOT / "tests"
PROBE = Path(__file__).resolve().parent / "image_probe.py"


def _run(image: DeployerImage, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        podman(image.store, *PODMAN_RUN, "--pull=never", *args),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _config(image: DeployerImage, reference: str) -> Any:
    shown = subprocess.run(
        ["buildah", *image.store.global_args, "inspect", "--type=image", reference],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(shown.stdout)


def test_tags_entrypoint_and_user(deployer_image: DeployerImage) -> None:
    listing = deployer_image.listing
    track = PUBLISHED_VERSION.rpartition(".")[0]
    assert [t.rpartition(":")[2] for t in deployer_image.built.tags] == [PUBLISHED_VERSION, track]
    assert listing.version == PUBLISHED_VERSION
    ids = {_config(deployer_image, tag)["FromImageID"] for tag in deployer_image.built.tags}
    assert ids == {deployer_image.built.image_id.removeprefix("sha256:")}
    config = _config(deployer_image, deployer_image.reference)["OCIv1"]["config"]
    assert config["Entrypoint"] == ["/bin/deploy.sh"]
    assert not config.get("Cmd"), "the entrypoint takes the Job's arguments, no default command"
    assert config["User"] == "10001:10001"
    print(
        f"deployer image {deployer_image.reference}: {deployer_image.built.size}, built in "
        f"{deployer_image.build_s:.0f} s"
    )


def test_what_the_image_holds(deployer_image: DeployerImage) -> None:
    # This project's test files (as tests/PATH): none may be in the image.
    test_files = sorted(
        f"/tests/{p.relative_to(TESTS)}" for p in TESTS.rglob("*.py") if p.name != "__init__.py"
    )
    done = _run(
        deployer_image,
        f"--env=TEST_FILES={json.dumps(test_files)}",
        f"--volume={PROBE}:/probe.py:ro",
        "--entrypoint=/opt/deployer/bin/python",
        deployer_image.reference,
        "/probe.py",
    )
    found = json.loads(done.stdout)
    assert (found["uid"], found["gid"]) == (10001, 10001)
    locked = sorted(line.split(" ")[0] for line in RUNTIME.read_text().splitlines() if "==" in line)
    assert found["dists"] == sorted([*locked, f"triton-gke-deployer=={PUBLISHED_VERSION}"]), (
        "the hashed requirements and the deployer, nothing else (no pip, no setuptools)"
    )
    assert found["helm"].startswith(helm_pin(IMAGE_HELM)["version"] + "+"), found["helm"]
    assert found["files"] == {
        "/bin/deploy.sh": True,
        "/bin/deploy_with_tests.sh": True,
        "/data/chart/Chart.yaml": False,
        "/data/schema.yaml": False,
        "/data-test/schema.yaml": False,
        "/usr/local/bin/helm": True,
    }
    assert found["compilers"] == []
    assert found["leftovers"] == []
    assert found["test_files"] == []
    assert found["venvs"] == ["/opt/deployer/pyvenv.cfg"], "the image's own environment only"


def test_no_arguments_is_marketplace_deploy(deployer_image: DeployerImage) -> None:
    done = _run(deployer_image, deployer_image.reference, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "/data/values" in done.stderr, "deploy looked for Marketplace's values"
    assert "could not read the app's name and namespace: no Application marked Failed" in (
        done.stdout
    ), "--marketplace-job: a failure marks the Application"


def test_the_command_line_renders_what_google_accepts(
    deployer_image: DeployerImage, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump({"name": "tri", "namespace": "apps", "modelRepository": "gs://bucket/m"})
    )
    values.chmod(0o644)
    done = _run(
        deployer_image,
        f"--volume={values}:/data/values.yaml:ro",
        "--entrypoint=triton-gke-deployer",
        deployer_image.reference,
        "render",
    )
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    app = next(d for d in rendered if d["kind"] == "Application")
    info = json.loads(app["metadata"]["annotations"]["marketplace.cloud.google.com/deploy-info"])
    assert info == {"partner_id": "triton-on-gke", "product_id": "triton-inference-server"}
    assert app["spec"]["descriptor"]["version"] == deployer_image.listing.version
    manifests = tmp_path / "resources.yaml"
    manifests.write_text(done.stdout)
    schema = _run(deployer_image, "--entrypoint=cat", deployer_image.reference, "/data/schema.yaml")
    (tmp_path / "schema.yaml").write_text(schema.stdout)
    checked = subprocess.run(
        [
            sys.executable,
            str(DEPLOYER_UTIL / "validate_app_resource.py"),
            f"--schema_file={tmp_path / 'schema.yaml'}",
            f"--manifests={manifests}",
        ],
        cwd=DEPLOYER_UTIL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_every_published_image_carries_the_annotation(
    deployer_image: DeployerImage,
    image_registry: LocalRegistry,
    published_images: dict[str, str],
) -> None:
    listing = deployer_image.listing
    service = deployer_build(listing, Options(registry=image_registry.host)).annotations[ANNOTATION]
    assert service == "services/triton-inference-server.endpoints.triton-on-gke.cloud.goog"
    expected = {
        ref
        for name in (DEPLOYER, *listing.sources)
        for ref in listing.references(image_registry.host, name)
    }
    assert set(published_images) == expected
    for reference, digest in sorted(published_images.items()):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
            capture_output=True,
            check=True,
        ).stdout
        manifest = json.loads(raw)
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert manifest["annotations"][ANNOTATION] == service, reference
        assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == digest, reference
        print(f"{reference}@{digest} annotations: {json.dumps(manifest['annotations'])}")
    for name in listing.sources:
        tags = listing.references(image_registry.host, name)
        assert published_images[tags[0]] == published_images[tags[1]], "X.Y is X.Y.Z"


@pytest.mark.parametrize("name", ["", "tester"])
def test_republished_images_keep_their_source(
    deployer_image: DeployerImage, published_images: dict[str, str], name: str
) -> None:
    source = deployer_image.listing.sources[name]
    pushed = deployer_image.listing.references("localhost", name)[0]
    assert pushed in published_images
    source_config = _config(deployer_image, source)["OCIv1"]["rootfs"]["diff_ids"]
    pushed_config = _config(deployer_image, pushed)["OCIv1"]["rootfs"]["diff_ids"]
    assert pushed_config == source_config
    listed = subprocess.run(
        ["buildah", *deployer_image.store.global_args, "containers", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    left = [c for c in json.loads(listed) or [] if c["imagename"] == source]
    assert left == [], "republishing leaves no working container behind"
