"""Fixtures for the chart tests: the chart rendered once per helm binary and per values file;
for the release tests, a signing key, an OCI registry and the releases published there."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.registry import Registry, missing_registry, running_registry
from standins.signing import GnupgUnavailableError, Keyring, throwaway_keyring
from tests.baseline import CHART_PACKAGE as BASELINE_PACKAGE
from tests.chart.helpers import CI_VALUES_FILES, Manifest, render_chart
from tests.chart.releases import (
    CHART_NAME,
    VERSION,
    Published,
    default_image_tag,
    make,
    offline_audit,
    signing_args,
)
from tests.conftest import helm_path, unavailable


@pytest.fixture(scope="session")
def defaults(helm: Path) -> list[Manifest]:
    """The chart rendered with only a model repository set."""
    return render_chart(helm)


@pytest.fixture(scope="session", params=CI_VALUES_FILES, ids=lambda p: p.name)
def ci_values_file(request: pytest.FixtureRequest) -> Path:
    """Each chart/ci/*-values.yaml in turn."""
    path: Path = request.param
    return path


# -- releases: a signing key, an OCI registry, and what `make release` publishes there ------------


@pytest.fixture(scope="session")
def signing_keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    """A release key made for this run (a throwaway GnuPG home), as `make package` takes it."""
    try:
        with throwaway_keyring(tmp_path_factory.mktemp("signing"), "Release Tests") as keyring:
            yield keyring
    except GnupgUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's docker-registry on a free loopback port, over TLS from an authority made for
    this run; stopped at the end of the session."""
    if reason := missing_registry():
        unavailable(reason)
    with running_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def published_releases(
    oci_registry: Registry, signing_keyring: Keyring, tmp_path_factory: pytest.TempPathFactory
) -> Published:
    """The registry holding the previous release (the baseline package, pushed as it was
    published: unsigned) and this one, published by `make release` (signed; the release
    checks offline, RELEASE_AUDIT; the chart alone, RELEASE_IMAGES empty)."""
    work = tmp_path_factory.mktemp("published")
    env = oci_registry.helm_env(work / "helm")
    chart_repository = f"oci://{oci_registry.host}/charts"
    pushed = subprocess.run(
        [str(helm_path("helm4")), "push", str(BASELINE_PACKAGE), chart_repository],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    released = make(
        "release",
        f"VERSION={VERSION}",
        f"REGISTRY={oci_registry.host}",
        *signing_args(signing_keyring),
        f"RELEASE_DIR={work / 'release'}",
        f"RELEASE_AUDIT={offline_audit(default_image_tag())}",
        "RELEASE_IMAGES=",
        env=env,
    )
    if released.returncode != 0:
        pytest.fail(f"make release failed:\n{released.stdout}\n{released.stderr}")
    return Published(
        registry=oci_registry,
        keyring=signing_keyring,
        chart=f"{chart_repository}/{CHART_NAME}",
        repository=f"charts/{CHART_NAME}",
        output=released.stdout + released.stderr,
        helm_home=work / "helm",
    )
