"""The Marketplace form generated from schema.form.yaml and the chart's declarations
(scripts/marketplace_form.py), the deployer's image grammar read from the chart
(deployer/formats.py), and the NGC release table (security/releases.py).

Cases:
- a form property takes the chart's type, pattern, lengths, bounds and default; an `enum`
  replaces the chart's pattern and lengths; `type: NAME` takes a values.yaml type's rules; a
  required property gets no default; NAME and NAMESPACE pass as written;
- a property naming no chart value, a choice, default or bound the chart refuses, a bound wider
  than the chart's, or a type other than the chart's is refused saying what to change;
- the header: publishedVersion is the chart's version (quoted, where `make version` finds
  it), the GPU platforms are the accelerator choices, `{triton}` and `{ngcRelease}` are filled
  from the release table; deployer/rbac.yaml binds exactly the schema's rules;
- the image projections are the chart's image types, joined for full references; a chart
  without them is refused;
- the release table maps both ways and names what is missing.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from deployer import formats
from deployer.errors import SchemaError
from scripts import marketplace_form as mf
from security.errors import ReleaseError
from security.releases import Release, release_of_triton, triton_version
from tests.conftest import CHART_DIR, ROOT

CHART_SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
FORM = yaml.safe_load((ROOT / mf.FORM).read_text())


def _property(key: str, own: dict[str, Any], **options: Any) -> dict[str, Any]:
    return mf.form_property(key, own, CHART_SCHEMA, VALUES, **options)


def test_a_property_takes_the_charts_rules() -> None:
    assert _property("ingress.host", {"title": "Host"}) == {
        "type": "string",
        "title": "Host",
        "default": "",
        "pattern": CHART_SCHEMA["definitions"]["hostname"]["pattern"],
        "maxLength": 253,
    }
    assert _property("server.logVerbose", {}) == {
        "type": "integer",
        "default": 0,
        "minimum": 0,
        "maximum": 3,
    }


def test_the_form_narrows() -> None:
    accelerator = _property("gpu.accelerator", {"enum": ["nvidia-l4", "nvidia-b200"]})
    assert accelerator == {
        "type": "string",
        "default": "nvidia-l4",
        "enum": ["nvidia-l4", "nvidia-b200"],
    }
    assert _property("gpu.count", {"minimum": 1, "maximum": 8})["maximum"] == 8
    repository = _property("modelRepository", {"type": "gcsPath"}, required=True)
    assert "default" not in repository
    assert repository["pattern"] == CHART_SCHEMA["definitions"]["gcsPath"]["pattern"]
    assert repository["maxLength"] == 1252


@pytest.mark.parametrize(
    ("key", "own", "message"),
    [
        ("gpu.acceleratorType", {}, "names no value of chart/values.yaml"),
        ("gpu.accelerator", {"enum": ["amd-mi300x"]}, "offers 'amd-mi300x', which the chart"),
        ("gpu.count", {"maximum": 17}, "offers 17, which the chart refuses"),
        ("replicaCount", {"default": -1}, "offers -1"),
        ("ingress.host", {"maxLength": 300}, "maxLength 300 is wider than the chart's 253"),
        ("replicaCount", {"type": "string"}, "is typed 'string', but the chart declares it"),
    ],
)
def test_what_the_chart_refuses_the_form_may_not_offer(
    key: str, own: dict[str, Any], message: str
) -> None:
    with pytest.raises(mf.FormError, match=message):
        _property(key, own)


def test_the_header_is_derived() -> None:
    built = mf.build_form(FORM, CHART_SCHEMA, VALUES, CHART)
    header = built["x-google-marketplace"]
    assert header["publishedVersion"] == CHART["version"]
    assert f'publishedVersion: "{CHART["version"]}"' in mf.dump(built, "")
    gpu = header["clusterConstraints"]["resources"][0]["requests"]["gpu"]["nvidia.com/gpu"]
    assert gpu["platforms"] == built["properties"]["gpu.accelerator"]["enum"]
    release = CHART["annotations"]["ngcRelease"]
    triton = triton_version(Release.parse(release)).removesuffix(".0")
    note = header["publishedVersionMetadata"]["releaseNote"]
    assert f"Triton Inference Server {triton} (NGC {release})" in note
    assert "{triton" not in json.dumps(built) and "{ngcRelease" not in json.dumps(built)
    assert built["properties"]["name"] == FORM["properties"]["name"]


def test_a_gpu_constraint_needs_accelerator_choices() -> None:
    form = copy.deepcopy(FORM)
    del form["properties"]["gpu.accelerator"]["enum"]
    with pytest.raises(mf.FormError, match="give that property an enum"):
        mf.build_form(form, CHART_SCHEMA, VALUES, CHART)


def test_rbac_binds_the_schemas_rules() -> None:
    built = mf.build_form(FORM, CHART_SCHEMA, VALUES, CHART)
    service_account, role, binding = mf.rbac(built)
    rules = built["x-google-marketplace"]["deployerServiceAccount"]["roles"][0]["rules"]
    assert role["rules"] == rules
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "triton-deployer"}]
    assert service_account["metadata"]["name"] == "triton-deployer"
    form = copy.deepcopy(built)
    form["x-google-marketplace"]["deployerServiceAccount"]["roles"][0]["type"] = "ClusterRole"
    with pytest.raises(mf.FormError, match="one Role"):
        mf.rbac(form)


def test_the_image_grammar_is_the_charts() -> None:
    parts = formats.load_image_part_schemas(CHART_DIR)
    definitions = CHART_SCHEMA["definitions"]
    assert parts["REGISTRY"] == definitions["imageRegistry"]
    assert parts["REPO_WITHOUT_REGISTRY"] == definitions["imageRepository"]
    assert parts["TAG"] == definitions["imageTag"]
    assert parts["FULL"]["maxLength"] == 253 + 1 + 255 + 1 + 128
    assert formats.pattern_body("^(a|b)?$", name="t") == "a|b"
    assert formats.pattern_body("^(a)(b)?$", name="t") == "(a)(b)?"
    assert formats.pattern_body("^([)]a)?$", name="t") == "[)]a"
    with pytest.raises(SchemaError, match="not anchored"):
        formats.pattern_body("a", name="t")
    with pytest.raises(SchemaError, match="has no type imageRegistry, imageRepository, imageTag"):
        formats.image_part_schemas({"definitions": {}}, source="c")


def test_full_references_follow_the_grammar() -> None:
    full = re.compile(formats.load_image_part_schemas(CHART_DIR)["FULL"]["pattern"])
    assert full.fullmatch("gcr.io/project/triton:0.2.0")
    assert full.fullmatch("localhost:5000/a/b:t")
    assert not full.fullmatch("/a/b:t")
    assert not full.fullmatch("gcr.io/project/triton")


def test_the_release_table() -> None:
    assert triton_version(Release.parse("25.06")) == "2.59.0"
    assert triton_version(Release.parse("25.08")) == "2.60.0"
    assert release_of_triton("2.40") == Release.parse("23.11")
    with pytest.raises(ReleaseError, match=r"names no Triton for NGC 25\.07"):
        triton_version(Release.parse("25.07"))
    with pytest.raises(ReleaseError, match="not a Triton version"):
        release_of_triton("two")


def test_the_chart_ships_the_triton_of_its_release() -> None:
    release = Release.parse(CHART["annotations"]["ngcRelease"])
    assert CHART["appVersion"] == triton_version(release)
