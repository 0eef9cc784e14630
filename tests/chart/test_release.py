"""`make release VERSION=X.Y.Z REGISTRY=...` against a real OCI registry (Debian's
docker-registry on loopback, over TLS).

Cases:
- the release publishes the signed chart: the registry holds the version, `helm pull --verify`
  with the release key's public keyring passes with Helm 3 and Helm 4 (the provenance file went
  with it), `helm show chart` gives the version and appVersion; the output says each step and
  what was published, and how to install it;
- nothing is published when a step before the chart's push fails, each saying why: a VERSION
  that the files do not state (every file named), no REGISTRY, release checks that find a
  vulnerable default Triton (the bulletins' verdict on 26.05), an image push that fails; and
  a version the registry already holds is refused before any check runs, its digest unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from standins.registry import Registry
from standins.signing import Keyring
from tests.chart.releases import (
    CHART_NAME,
    VERSION,
    Published,
    default_image_tag,
    make,
    offline_audit,
    signing_args,
)
from tests.conftest import ROOT


def test_the_release_publishes_the_signed_chart(
    helm: Path, published_releases: Published, tmp_path: Path
) -> None:
    registry = published_releases.registry
    assert VERSION in registry.tags(published_releases.repository)
    pulled = subprocess.run(
        [
            str(helm), "pull", published_releases.chart, "--version", VERSION,
            "--verify", "--keyring", str(published_releases.keyring.public),
            "--destination", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=120, check=False,
        env=published_releases.helm_env(tmp_path / "helm"),
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(p.name for p in tmp_path.glob(f"{CHART_NAME}-*")) == [
        f"{CHART_NAME}-{VERSION}.tgz",
        f"{CHART_NAME}-{VERSION}.tgz.prov",
    ]
    shown = subprocess.run(
        [str(helm), "show", "chart", published_releases.chart, "--version", VERSION],
        capture_output=True, text=True, timeout=120, check=True,
        env=published_releases.helm_env(tmp_path / "helm"),
    )  # fmt: skip
    chart = yaml.safe_load(shown.stdout)
    local = yaml.safe_load((ROOT / "chart" / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (VERSION, local["appVersion"])

    said = published_releases.output
    for step in ("the version", "the release checks", "the signed package", "the images"):
        assert f"==> release {VERSION}: {step}" in said
    assert "none pushed: RELEASE_IMAGES is empty" in said
    digest = registry.digest(published_releases.repository, VERSION)
    assert f"published {registry.host}/charts/{CHART_NAME}:{VERSION} ({digest})" in said
    assert f"helm install RELEASE {published_releases.chart} --version {VERSION}" in said


def _release(
    registry: Registry, keyring: Keyring, tmp_path: Path, *overrides: str
) -> subprocess.CompletedProcess[str]:
    """`make release` of this version into ``tmp_path``; ``overrides`` come last and win."""
    return make(
        "release",
        f"VERSION={VERSION}",
        f"REGISTRY={registry.host}/{tmp_path.name}",
        *signing_args(keyring),
        f"RELEASE_DIR={tmp_path / 'release'}",
        f"RELEASE_AUDIT={offline_audit(default_image_tag())}",
        "RELEASE_IMAGES=",
        *overrides,
        env=registry.helm_env(tmp_path / "helm"),
    )


def _nothing_published(registry: Registry, tmp_path: Path) -> bool:
    return registry.tags(f"{tmp_path.name}/charts/{CHART_NAME}") == []


def test_a_version_the_files_do_not_state_is_refused(
    oci_registry: Registry, signing_keyring: Keyring, tmp_path: Path
) -> None:
    result = _release(oci_registry, signing_keyring, tmp_path, "VERSION=9.0.0")
    assert result.returncode != 0
    for path in ("chart/Chart.yaml", "schema.yaml", "pyproject.toml", "README.md"):
        assert f"{path} states {VERSION}" in result.stderr, path
    assert "CHANGELOG.md has no dated entry for 9.0.0" in result.stderr
    assert "==> release 9.0.0: the release checks" not in result.stdout
    assert not (tmp_path / "release").exists()
    assert _nothing_published(oci_registry, tmp_path)


def test_a_release_needs_a_registry(signing_keyring: Keyring, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY"}
    result = make("release", f"VERSION={VERSION}", *signing_args(signing_keyring), env=env)
    assert result.returncode == 2
    assert "set REGISTRY=HOST[/PATH]" in result.stderr


def test_release_checks_that_fail_publish_nothing(
    oci_registry: Registry, signing_keyring: Keyring, tmp_path: Path
) -> None:
    """The bulletins' verdict on an affected release (NGC 26.05) stops the release."""
    result = _release(
        oci_registry, signing_keyring, tmp_path, f"RELEASE_AUDIT={offline_audit('26.05-py3')}"
    )
    assert result.returncode != 0
    assert "5865" in result.stderr, result.stderr
    assert "the signed package" not in result.stdout
    assert not (tmp_path / "release").exists()
    assert _nothing_published(oci_registry, tmp_path)


def test_a_failed_image_push_publishes_no_chart(
    oci_registry: Registry, signing_keyring: Keyring, tmp_path: Path
) -> None:
    result = _release(oci_registry, signing_keyring, tmp_path, "RELEASE_IMAGES=false")
    assert result.returncode != 0
    assert f"==> release {VERSION}: the images" in result.stdout
    assert f"==> release {VERSION}: the chart" not in result.stdout
    assert _nothing_published(oci_registry, tmp_path)


def test_a_published_version_is_never_replaced(
    published_releases: Published, tmp_path: Path
) -> None:
    registry = published_releases.registry
    before = registry.digest(published_releases.repository, VERSION)
    result = make(
        "release",
        f"VERSION={VERSION}",
        f"REGISTRY={registry.host}",
        *signing_args(published_releases.keyring),
        f"RELEASE_DIR={tmp_path / 'release'}",
        "RELEASE_AUDIT=false",
        "RELEASE_IMAGES=",
        env=published_releases.helm_env(tmp_path / "helm"),
    )
    assert result.returncode != 0
    assert f"{VERSION} is already published: a released version is never replaced" in (
        result.stderr
    )
    assert "the release checks" not in result.stdout
    assert registry.digest(published_releases.repository, VERSION) == before
