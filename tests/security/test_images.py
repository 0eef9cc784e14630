"""SECURITY.md's table of images and pins.

Cases: the table is what `make security-docs` writes from the pins (values files, Dockerfile,
pyproject, the third-party record); every image the chart renders with its defaults and each
ci values file is in it, unless pinned by digest or built by the tests themselves (the real node's
images, in this machine's registry: tests/kube/node_images.py); a SECURITY.md without the
markers is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from security import images
from security.errors import RecordError
from tests.chart.helpers import CI_VALUES_FILES, field, render_chart
from tests.conftest import ROOT
from tests.deployer.images import REGISTRY_HOST


def test_the_table_is_up_to_date() -> None:
    document = (ROOT / "SECURITY.md").read_text()
    assert images.replaced(document, images.table(images.rows(ROOT))) == document, (
        "SECURITY.md's images table is stale: run `make security-docs`"
    )


def test_every_image_the_chart_runs_is_in_the_table(helm4: Path) -> None:
    listed = " ".join(row.image for row in images.rows(ROOT))
    renders = [render_chart(helm4)] + [
        render_chart(helm4, {}, values_files=[path]) for path in CI_VALUES_FILES
    ]
    seen = set()
    for manifests in renders:
        for manifest in manifests:
            spec = field(manifest, "spec.template.spec") or field(manifest, "spec") or {}
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                image = container["image"]
                if "@sha256:" not in image and not image.startswith(f"{REGISTRY_HOST}/"):
                    seen.add(image)
    assert seen, "the chart renders containers"
    missing = sorted(image for image in seen if f"`{image}`" not in listed)
    assert not missing, f"images the chart runs that SECURITY.md does not list: {missing}"


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(RecordError, match="images:start"):
        images.replaced("# Security\n", "table")
