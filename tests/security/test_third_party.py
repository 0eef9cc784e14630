"""Third-party manifests the docs apply, against security/third-party.yaml.

Cases: the repository's docs apply only pinned, recorded manifests whose images are at or above
their fixed releases (the Stackdriver adapter at v0.16.8 or later); the README's command is
the recorded URL; and each way to break the rule is reported with what to do: a manifest from
a branch, one the record does not list, a recorded image below its minimum, a record entry no
doc uses, a chart installed from outside the repository, a malformed record.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from security import manifests
from security.errors import RecordError
from tests.conftest import ROOT

RECORD = manifests.load_record()
COMMIT = "af49d863755c0535f598cfde9288ae9a75251d38"
PINNED = f"https://raw.githubusercontent.com/o/r/{COMMIT}/deploy/adapter.yaml"


def test_the_docs_apply_only_pinned_reviewed_manifests() -> None:
    assert manifests.problems(ROOT, RECORD) == []


def test_the_adapter_image_is_at_or_above_its_fixed_release() -> None:
    (adapter,) = [m for m in RECORD if "Stackdriver" in m.name]
    (image,) = adapter.images
    assert image.image.startswith("gcr.io/gke-release/custom-metrics-stackdriver-adapter:")
    assert manifests.version(image.image.rpartition(":")[2]) >= manifests.version("v0.16.8")
    assert manifests.pinned_ref(adapter.url) == COMMIT
    assert f"kubectl apply -f {adapter.url}" in (ROOT / "README.md").read_text()


def docs(tmp_path: Path, readme: str) -> Path:
    (tmp_path / "README.md").write_text(readme)
    return tmp_path


def manifest(url: str = PINNED, image: str = "img:v0.16.9-gke.0") -> manifests.Manifest:
    pinned = manifests.PinnedImage(image=image, minimum="v0.16.8", because="filter injection")
    return manifests.Manifest("Adapter", url, datetime.date(2026, 12, 7), (pinned,))


def test_a_manifest_from_a_branch_is_reported(tmp_path: Path) -> None:
    url = "https://raw.githubusercontent.com/o/r/master/deploy/adapter.yaml"
    found = manifests.problems(docs(tmp_path, f"kubectl apply -f {url}\n"), [manifest(url)])
    assert found == [
        f"Adapter: {url} is not pinned (a branch can change under users): use a full commit or "
        "a release asset URL"
    ]


def test_an_unrecorded_manifest_is_reported(tmp_path: Path) -> None:
    other = "https://example.com/other.yml"
    found = manifests.problems(
        docs(tmp_path, f"kubectl apply -f {PINNED}\ncurl {other}\n"), [manifest()]
    )
    assert len(found) == 1
    assert found[0].startswith(f"README.md:2 applies {other}, which security/third-party.yaml")


def test_an_image_below_its_fixed_release_is_reported(tmp_path: Path) -> None:
    old = manifest(image="img:v0.16.7-gke.0")
    found = manifests.problems(docs(tmp_path, f"kubectl apply -f {PINNED}\n"), [old])
    assert len(found) == 1
    assert "names img:v0.16.7-gke.0, older than v0.16.8 (filter injection)" in found[0]


def test_a_recorded_manifest_no_doc_applies_is_reported(tmp_path: Path) -> None:
    found = manifests.problems(docs(tmp_path, "nothing to apply\n"), [manifest()])
    assert found == [
        "Adapter: recorded in security/third-party.yaml but applied nowhere in the docs: remove "
        "it from the record, or fix the docs' URL to match"
    ]


@pytest.mark.parametrize(
    "command",
    [
        "helm install prom oci://registry.example/charts/prometheus --version 1.0.0",
        "helm repo add istio https://istio-release.storage.googleapis.com/charts",
        "helm upgrade --install gw gateway --repo https://charts.example.com",
    ],
)
def test_a_foreign_chart_is_reported(tmp_path: Path, command: str) -> None:
    found = manifests.problems(docs(tmp_path, f"```bash\n{command}\n```\n"), [])
    assert len(found) == 1
    assert found[0].startswith("README.md:2: `helm")
    assert "installs a chart from outside this repository" in found[0]


def test_the_repository_charts_are_not_foreign(tmp_path: Path) -> None:
    text = "helm install triton ./chart -n x\nhelm upgrade --install load locust/chart\n"
    assert manifests.problems(docs(tmp_path, text), []) == []


def test_a_malformed_record_is_refused() -> None:
    with pytest.raises(RecordError, match="each manifest needs name, url, reviewed"):
        manifests.parse_record({"manifests": [{"name": "x", "url": PINNED}]})
