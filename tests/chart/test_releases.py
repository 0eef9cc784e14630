"""Two releases of the chart in one namespace.

Cases: with every ci file, two releases share no object name of any kind and select only
their own pods; fullnameOverride and long release names stay within 63 characters.
"""

from __future__ import annotations

from pathlib import Path

from tests.chart.helpers import field, render_chart


def test_two_releases_share_no_object_name(helm: Path, ci_values_file: Path) -> None:
    first, second = (
        render_chart(helm, {}, values_files=[ci_values_file], release=name)
        for name in ("blue", "green")
    )
    names = [{(m["kind"], m["metadata"]["name"]) for m in r} for r in (first, second)]
    assert not names[0] & names[1]
    for release, manifests in (("blue", first), ("green", second)):
        for manifest in manifests:
            selector = field(manifest, "spec.selector.matchLabels") or field(
                manifest, "spec.selector"
            )
            if manifest["kind"] in {"Deployment", "Service", "PodDisruptionBudget"}:
                assert selector["app.kubernetes.io/instance"] == release


def test_long_names_stay_within_dns_label_length(helm: Path) -> None:
    release = "a-release-name-of-fifty-three-characters-the-most-hel"
    manifests = render_chart(
        helm, {"modelRepository": "gs://bucket/m", "replicaCount": 2}, release=release
    )
    for manifest in manifests:
        assert len(manifest["metadata"]["name"]) <= 63, manifest["metadata"]["name"]
