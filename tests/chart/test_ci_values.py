"""Every chart/ci values file renders with Helm 3 and Helm 4 into valid objects.

Cases: each file renders (built-in kinds valid for Kubernetes 1.30 and the newest, custom
resources valid against their CRDs); both helm versions give the same objects; custom resources
have a CRD to check against (skipped, with the reason, where ../shared/crds is absent); every
file names its feature in a leading comment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.helpers import (
    CI_VALUES_FILES,
    Manifest,
    ManifestInvalidError,
    crd_schemas,
    is_builtin,
    render_chart,
    validate_manifest,
)
from tests.conftest import CRDS_DIR, HELM_BINARIES, ROOT, unavailable


def test_renders_into_valid_objects(helm: Path, ci_values_file: Path) -> None:
    manifests = render_chart(helm, {}, values_files=[ci_values_file])
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service"} <= kinds


def _without_random_keys(manifests: list[Manifest]) -> list[Manifest]:
    """The objects with Secret data blanked: the restricted-API key is drawn at random."""
    for manifest in manifests:
        if manifest["kind"] == "Secret":
            manifest["data"] = dict.fromkeys(manifest["data"], "<random>")
    return manifests


def test_helm_3_and_4_render_the_same_objects(ci_values_file: Path) -> None:
    helm3, helm4 = (ROOT / HELM_BINARIES[name][1] for name in ("helm3", "helm4"))
    assert _without_random_keys(
        render_chart(helm3, {}, values_files=[ci_values_file])
    ) == _without_random_keys(render_chart(helm4, {}, values_files=[ci_values_file]))


def test_custom_resources_have_crds(helm: Path) -> None:
    if not CRDS_DIR.is_dir():
        unavailable(f"{CRDS_DIR} is absent: custom resources were not validated against CRDs")
    custom = {
        (m["apiVersion"], m["kind"])
        for path in CI_VALUES_FILES
        for m in render_chart(helm, {}, values_files=[path])
        if not is_builtin(m)
    }
    assert custom, "the ci files render no custom resource: the CRD check checks nothing"
    assert custom <= set(crd_schemas())


@pytest.mark.parametrize("path", CI_VALUES_FILES, ids=lambda p: p.name)
def test_each_file_says_what_it_covers(path: Path) -> None:
    assert path.read_text().startswith("# "), f"{path.name} must open with a comment"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 80, "protocoll": "TCP"}]},
            },
            "'protocoll' was unexpected",
        ),
        (
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "v"},
                "spec": {"hosts": ["*"], "http": [{"timeout": 5}]},
            },
            "is not of type 'string'",
        ),
        (
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "r"},
                "spec": {"rulez": []},
            },
            "'rulez' was unexpected",
        ),
    ],
    ids=["builtin-unknown-field", "crd-wrong-type", "crd-unknown-field"],
)
def test_validation_rejects_invalid_objects(manifest: dict[str, object], message: str) -> None:
    if not is_builtin(manifest) and not CRDS_DIR.is_dir():
        unavailable(f"{CRDS_DIR} is absent: custom resources are not validated")
    with pytest.raises(ManifestInvalidError, match=message):
        validate_manifest(manifest)
