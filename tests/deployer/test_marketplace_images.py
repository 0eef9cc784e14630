"""The deployer takes what GKE Marketplace really sends, with Google's own code as the oracle.

For schema v2, Google's ``provision.py`` writes the deployer's values to the Secret
``NAME-deployer-config``: the form's values plus ``__image_repo_prefix__``, and no image
property. Google's ``expand_config.expand`` derives the image properties from the prefix, the
schema's ``images`` and ``publishedVersion``; the deployer must derive the same.

Cases:
- for our schema and for schemas that use every projection type (FULL, REGISTRY,
  REPO_WITH_REGISTRY, REPO_WITHOUT_REGISTRY, TAG) on an image named "" and on named images,
  under several prefixes, the deployer's checked values equal ``expand_config.expand``'s, in
  the values-file form and in the values-folder form (one file per key);
- a key the schema does not know is refused by both, the deployer naming the key;
- a prefix both refuse (empty, not a string, no repository for the image named "") is
  refused by the deployer with what to give; an image value typed by hand next to the prefix
  is refused naming the key; image values typed by hand without a prefix still work;
- ``provision.process`` builds the manifests for several form choices: the values Secret
  carries the prefix and no image property, and the deployer, given that Secret's
  ``values.yaml`` as its file, renders the Triton and tester containers with the images
  ``expand_config`` derives and the same chart values.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import actions, companions, values
from deployer.errors import ValuesError
from tests.conftest import CHART_DIR
from tests.deployer.conftest import IMAGE_PARTS, PUBLISHED_VERSION, SCHEMA
from tests.deployer.google_tools import google_module, provision_manifests, values_secret

PROJECTIONS = ["FULL", "REGISTRY", "REPO_WITH_REGISTRY", "REPO_WITHOUT_REGISTRY", "TAG"]
FORM: dict[str, Any] = {"name": "tri", "namespace": "apps", "modelRepository": "gs://bucket/models"}
PREFIXES = ["gcr.io/my-project/triton", "us-docker.pkg.dev/my-project/apps/triton"]


def _schema_doc(images: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our schema.yaml, with its ``images`` replaced when given."""
    document = dict(yaml.safe_load(SCHEMA.read_text()))
    if images is not None:
        document["x-google-marketplace"]["images"] = copy.deepcopy(images)
    return document


def _every_projection(prefix: str) -> dict[str, Any]:
    return {"properties": {f"{prefix}.{p.lower()}": {"type": p} for p in PROJECTIONS}}


SCHEMAS = {
    "ours": None,
    "unnamed-image-every-projection": {"": _every_projection("main")},
    "named-images-every-projection": {
        "": _every_projection("main"),
        "triton": _every_projection("triton"),
        "sidecar": {"properties": {"sidecar.image": {"type": "FULL"}}},
    },
    "named-images-only": {"tester": _every_projection("tester")},
}


def _ours(document: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The deployer's checked flat values for ``given``."""
    schema = values.parse_schema(copy.deepcopy(document), image_parts=IMAGE_PARTS)
    return values.validate(schema, values.with_images(schema, values.flatten(given, {})))


def _google(document: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    config_helper = google_module("config_helper")
    expand_config = google_module("expand_config")
    schema = config_helper.Schema(copy.deepcopy(document))
    return dict(expand_config.expand(copy.deepcopy(given), schema))


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("images", sorted(SCHEMAS))
def test_image_values_are_those_expand_config_derives(images: str, prefix: str) -> None:
    document = _schema_doc(SCHEMAS[images])
    given = {**FORM, values.IMAGE_REPO_PREFIX: prefix}
    expected = _google(document, given)
    image_keys = {
        key
        for image in document["x-google-marketplace"]["images"].values()
        for key in image["properties"]
    }
    assert image_keys <= set(expected), "the oracle derives every image property"
    assert _ours(document, given) == expected


def test_the_values_folder_form_reads_as_expand_config_reads_it(tmp_path: Path) -> None:
    config_helper = google_module("config_helper")
    expand_config = google_module("expand_config")
    document = _schema_doc(SCHEMAS["named-images-every-projection"])
    given = {
        **FORM,
        "replicaCount": "3",
        "gpu.mps.enabled": "true",
        values.IMAGE_REPO_PREFIX: PREFIXES[0],
    }
    folder = tmp_path / "values"
    folder.mkdir()
    for key, text in given.items():
        (folder / key).write_text(text)
    expected = expand_config.expand(
        config_helper.load_values(None, str(folder), config_helper.Schema(document)),
        config_helper.Schema(document),
    )
    schema = values.parse_schema(document, image_parts=IMAGE_PARTS)
    loaded = values.load_values(folder, schema)
    assert values.validate(schema, values.with_images(schema, loaded)) == expected
    assert expected["replicaCount"] == 3
    assert expected["gpu.mps.enabled"] is True


def test_an_unknown_key_is_refused_by_both_and_named() -> None:
    expand_config = google_module("expand_config")
    document = _schema_doc()
    given = {**FORM, values.IMAGE_REPO_PREFIX: PREFIXES[0], "gpuCount": 2}
    with pytest.raises(expand_config.InvalidProperty, match="gpuCount"):
        _google(document, given)
    with pytest.raises(ValuesError, match="gpuCount: unknown key"):
        _ours(document, given)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", "is not a registry path"),
        (7, "is not a registry path"),
        ("gcr.io", "names no repository for image ''"),
    ],
)
def test_a_prefix_expand_config_cannot_use_is_refused(prefix: Any, message: str) -> None:
    document = _schema_doc()
    given = {**FORM, values.IMAGE_REPO_PREFIX: prefix}
    with pytest.raises(Exception):  # noqa: B017 (each of Google's failures has its own type)
        _google(document, given)
    with pytest.raises(ValuesError, match=message):
        _ours(document, given)


def test_an_image_value_both_typed_and_derived_is_refused() -> None:
    given = {**FORM, values.IMAGE_REPO_PREFIX: PREFIXES[0], "image.tag": "24.10-py3"}
    with pytest.raises(ValuesError, match=r"image\.tag: given, and derived from"):
        _ours(_schema_doc(), given)


def test_image_values_typed_by_hand_still_work() -> None:
    given = {**FORM, "image": {"registry": "nvcr.io", "tag": "24.10-py3"}}
    checked = _ours(_schema_doc(), given)
    assert (checked["image.registry"], checked["image.tag"]) == ("nvcr.io", "24.10-py3")
    assert "image.repository" not in checked, "the chart's default stays"


FORM_CHOICES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "h200-pair-with-mps": {
        "gpu.accelerator": "nvidia-h200-141gb",
        "gpu.count": 2,
        "gpu.mps.enabled": True,
    },
    "autoscaling-on-queue-time": {
        "autoscaling.enabled": True,
        "metrics.podMonitoring.enabled": True,
        "autoscaling.maxReplicas": 8,
    },
    "istio-ingress": {"ingress.mode": "istio", "ingress.host": "triton.example.com"},
}


def _container_images(objects: list[dict[str, Any]], kind: str) -> list[str]:
    found = []
    for obj in objects:
        if obj["kind"] != kind:
            continue
        spec = obj["spec"]["template"]["spec"] if kind == "Deployment" else obj["spec"]
        found += [c["image"] for c in spec["containers"]]
    return found


@pytest.mark.parametrize("choice", sorted(FORM_CHOICES))
def test_the_deployer_renders_the_images_of_what_provision_sends(
    choice: str, helm4: Path, tmp_path: Path
) -> None:
    config_helper = google_module("config_helper")
    expand_config = google_module("expand_config")
    form = {**FORM, **FORM_CHOICES[choice]}
    deployer_image = f"gcr.io/my-project/triton/deployer:{PUBLISHED_VERSION}"
    manifests = provision_manifests(form, deployer_image=deployer_image)
    secret = values_secret(manifests, FORM["name"])
    sent = yaml.safe_load(secret["stringData"]["values.yaml"])
    assert sent[values.IMAGE_REPO_PREFIX] == "gcr.io/my-project/triton"
    assert not [k for k in sent if k.startswith(("image.", "helmTest."))], "no image property"
    expanded = expand_config.expand(sent, config_helper.Schema.load_yaml_file(str(SCHEMA)))

    values_file = tmp_path / "values.yaml"
    values_file.write_text(secret["stringData"]["values.yaml"])
    plan = actions.make_plan(
        actions.Inputs(chart=CHART_DIR, schema=SCHEMA, values=values_file, helm=helm4)
    )
    chart_values = {k: v for k, v in expanded.items() if k not in ("name", "namespace")}
    derived = companions.derive(chart_values)
    listing = values.load_schema(SCHEMA, chart=CHART_DIR).listing_values()
    assert plan.release.chart_values == values.expand_dotted(
        {**companions.apply(chart_values, derived), **values.FIXED_VALUES, **listing}
    )
    triton = f"{expanded['image.registry']}/{expanded['image.repository']}:{expanded['image.tag']}"
    assert triton == f"gcr.io/my-project/triton:{PUBLISHED_VERSION}"
    assert triton in _container_images(plan.objects, "Deployment")
    tester = (
        f"{expanded['helmTest.image.registry']}/{expanded['helmTest.image.repository']}:"
        f"{expanded['helmTest.image.tag']}"
    )
    assert tester == f"gcr.io/my-project/triton/tester:{PUBLISHED_VERSION}"
    assert _container_images(plan.tests, "Pod") == [tester]
    every_image = _container_images(plan.objects, "Deployment") + _container_images(
        plan.objects, "Pod"
    )
    assert all(image.startswith("gcr.io/my-project/triton") for image in every_image), (
        f"an image Marketplace did not republish: {every_image}"
    )
