"""Triton's image and the NGC release it is (image.release, image.flavor, image.tag).

What depends on the release (``--http-max-input-size`` from NGC 25.06, the perf_analyzer SDK
image) reads ``image.release``, else the release this chart version ships (Chart.yaml's
``ngcRelease``), never the shape of a tag: GKE Marketplace runs Triton as ``PREFIX:0.1.0``.

Cases: the default image is ``<chart release>-py3``; ``image.release`` and ``image.flavor``
make the tag; a tag of NGC's shape must be of the release, the render refusing another with
what to set (the chart's default release or an explicit one), while a tag that is no NGC
release (a republished copy, a build of one's own) keeps the release; the standby's image
pre-pull pulls Triton's image; the schema refuses a release that is not YY.MM and an unknown
flavour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import (
    CHART_RELEASE,
    HelmFailedError,
    field,
    only,
    render_chart,
    triton_container,
)

REPO = {"modelRepository": "gs://bucket/models"}


def _image(helm: Path, image: dict[str, Any]) -> str:
    return str(triton_container(render_chart(helm, {**REPO, "image": image}))["image"])


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ({}, f"nvcr.io/nvidia/tritonserver:{CHART_RELEASE}-py3"),
        ({"release": "25.10"}, "nvcr.io/nvidia/tritonserver:25.10-py3"),
        (
            {"flavor": "pyt-python-py3"},
            f"nvcr.io/nvidia/tritonserver:{CHART_RELEASE}-pyt-python-py3",
        ),
        (
            {"release": "25.10", "tag": "25.10-vllm-python-py3"},
            "nvcr.io/nvidia/tritonserver:25.10-vllm-python-py3",
        ),
        (
            {"tag": f"{CHART_RELEASE}-py3-custom"},
            f"nvcr.io/nvidia/tritonserver:{CHART_RELEASE}-py3-custom",
        ),
        ({"registry": "gcr.io", "repository": "p/triton", "tag": "0.1.0"}, "gcr.io/p/triton:0.1.0"),
    ],
    ids=[
        "default",
        "release",
        "flavor",
        "release-and-tag",
        "own-build-of-the-release",
        "republished",
    ],
)
def test_the_image_follows_release_and_flavor(
    helm: Path, image: dict[str, Any], reference: str
) -> None:
    assert _image(helm, image) == reference


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            {"tag": "25.01-py3"},
            f"image.tag=25.01-py3 is NGC release 25.01, but the chart takes the image for release "
            f"{CHART_RELEASE} (this chart's own, as image.release is empty): set "
            "image.release=25.01 as well",
        ),
        (
            {"tag": "26.02", "release": "25.10"},
            "image.tag=26.02 is NGC release 26.02, but the chart takes the image for release "
            "25.10 (image.release): set image.release=26.02 as well",
        ),
    ],
    ids=["tag-of-another-release", "tag-and-release-disagree"],
)
def test_an_ngc_tag_of_another_release_is_refused(
    helm: Path, image: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailedError, match=r"or set only image\.release") as refused:
        render_chart(helm, {**REPO, "image": image})
    assert message in refused.value.stderr
    # The tag may be an earlier chart's default that `helm upgrade --reuse-values` kept.
    assert "upgrade with --reset-then-reuse-values instead" in refused.value.stderr


@pytest.mark.parametrize(
    ("image", "where"),
    [
        ({"release": "26.5"}, "/image/release"),
        ({"release": "26.13"}, "/image/release"),
        ({"release": "26.05-py3"}, "/image/release"),
        ({"flavor": "py4"}, "/image/flavor"),
        ({"tag": "-rc1"}, "/image/tag"),
    ],
)
def test_the_schema_refuses_a_malformed_release_flavor_or_tag(
    helm: Path, image: dict[str, Any], where: str
) -> None:
    with pytest.raises(HelmFailedError, match=where):
        render_chart(helm, {**REPO, "image": image})


def test_the_standby_pulls_tritons_image(helm: Path) -> None:
    values = {**REPO, "standby": {"enabled": True}, "image": {"release": "25.10"}}
    manifests = render_chart(helm, values)
    standby = only(manifests, "Deployment", "-standby")
    prepull = field(standby, "spec.template.spec.initContainers[name=prepull-triton-image]")
    assert prepull["image"] == "nvcr.io/nvidia/tritonserver:25.10-py3"
