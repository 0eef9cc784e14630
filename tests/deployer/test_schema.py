"""schema.yaml holds together with the chart (the deployer's rights: test_rbac.py).

Cases (all read chart/ and schema.yaml, so they follow the chart as it grows):
- every form property except name and namespace lands on a value in chart/values.yaml;
- the image properties land on the values the chart really puts in the Triton container
  and the helm test (Marketplace tester) pod;
- the schema's defaults render with real helm, and so does every enum choice (with the
  companion values it needs; without them the chart says what to set); each default, choice
  and bound passes the chart's values.schema.json;
- the GPU constraint lists exactly the accelerator choices;
- Triton's account: no SERVICE_ACCOUNT property, the chart's own account mounts no token and
  carries the Workload Identity annotation from the form; a bad GSA email is refused;
- every deploy renders the Application, named after the release (Marketplace's placeholder);
- publishedVersion equals the chart's version;
- docs/marketplace.md describes every property.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deployer import render, values
from deployer.errors import RenderError, ValuesError
from deployer.formats import IMAGE_PART_SCHEMAS
from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import SCHEMA


def chart_value_paths(tree: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key in values.yaml, parents included."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from chart_value_paths(value, path)


def test_every_property_lands_on_a_chart_value(schema: values.Schema) -> None:
    chart_values = set(chart_value_paths(yaml.safe_load((CHART_DIR / "values.yaml").read_text())))
    release_keys = set(schema.release_keys.values())
    missing = sorted(set(schema.properties) - release_keys - chart_values)
    assert missing == [], f"schema properties with no chart value: {missing}"


def _resolve(schema: values.Schema, **extra: Any) -> values.DeployValues:
    given = {"name": "t", "namespace": "ns", "modelRepository": "gs://bucket/models"}
    return values.resolve(schema, {**given, **extra})


def _render(helm: Path, release: values.DeployValues) -> list[dict[str, Any]]:
    return render.render(
        helm=helm,
        chart=CHART_DIR,
        release=release.name,
        namespace=release.namespace,
        values=release.chart_values,
    )


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]


def test_image_properties_reach_the_container(schema: values.Schema, helm4: Path) -> None:
    marked = {
        "image.registry": "registry.example",
        "image.repository": "team/triton-marked",
        "image.tag": "9.9.9",
        "helmTest.image.registry": "registry.example",
        "helmTest.image.repository": "team/tester-marked",
        "helmTest.image.tag": "8.8.8",
    }
    assert set(marked) <= set(schema.properties)
    objects = _render(helm4, _resolve(schema, **marked))
    images = [c["image"] for c in _containers(objects)]
    assert "registry.example/team/triton-marked:9.9.9" in images
    tester = next(o for o in objects if o["kind"] == "Pod")
    assert tester["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert tester["spec"]["containers"][0]["image"] == "registry.example/team/tester-marked:8.8.8"


def test_the_defaults_render(schema: values.Schema, helm4: Path) -> None:
    objects = _render(helm4, _resolve(schema))
    assert any(o["kind"] == "Deployment" for o in objects)


# What a choice needs besides itself to mean something and render: a form cannot make one
# field depend on another, so the chart refuses the rest with a message saying what to set.
COMPANIONS: dict[tuple[str, Any], dict[str, Any]] = {
    ("ingress.mode", "gatewayApi"): {"ingress.grpc.host": "grpc.example.com"},
    ("ingress.mode", "istio"): {"ingress.host": "triton.example.com"},
    ("autoscaling.metric", "queueTime"): {
        "autoscaling.enabled": True,
        "metrics.podMonitoring.enabled": True,
    },
    ("autoscaling.metric", "pendingRequests"): {
        "autoscaling.enabled": True,
        "metrics.podMonitoring.enabled": True,
    },
    ("autoscaling.metric", "gpuDutyCycle"): {"autoscaling.enabled": True},
    ("ingress.gatewayApi.className", "gke-l7-global-external-managed"): {
        "ingress.mode": "gatewayApi",
        "ingress.grpc.enabled": False,
    },
    ("ingress.gatewayApi.className", "gke-l7-gxlb"): {
        "ingress.mode": "gatewayApi",
        "ingress.grpc.enabled": False,
    },
}


def _enum_choices() -> list[tuple[str, Any]]:
    document = yaml.safe_load(SCHEMA.read_text())
    return [
        (key, choice)
        for key, prop in document["properties"].items()
        for choice in prop.get("enum", [])
    ]


@pytest.mark.parametrize(("key", "choice"), _enum_choices())
def test_every_enum_choice_renders(
    schema: values.Schema, helm4: Path, key: str, choice: Any
) -> None:
    given = {key: choice, **COMPANIONS.get((key, choice), {})}
    objects = _render(helm4, _resolve(schema, **given))
    if key == "gpu.accelerator":
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
        assert selector["cloud.google.com/gke-accelerator"] == choice
    if key == "autoscaling.metric":
        assert any(o["kind"] == "HorizontalPodAutoscaler" for o in objects)
    if key == "ingress.gatewayApi.className":
        gateway = next(o for o in objects if o["kind"] == "Gateway")
        assert gateway["spec"]["gatewayClassName"] == choice


def test_a_choice_without_its_companion_is_refused_by_the_chart(
    schema: values.Schema, helm4: Path
) -> None:
    with pytest.raises(RenderError, match=r"set ingress\.grpc\.host to its own name"):
        _render(helm4, _resolve(schema, **{"ingress.mode": "gatewayApi"}))
    with pytest.raises(RenderError, match=r"set metrics\.podMonitoring\.enabled=true"):
        _render(helm4, _resolve(schema, **{"autoscaling.enabled": True}))


def _chart_schema_of(chart_schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The chart schema's node for a dotted key (through `$ref`), able to validate alone."""
    node = chart_schema
    for part in dotted.split("."):
        if "$ref" in node:
            node = chart_schema["definitions"][node["$ref"].rpartition("/")[2]]
        node = node["properties"][part]
    return {**node, "definitions": chart_schema["definitions"]}


def test_every_default_and_choice_passes_the_chart_schema(
    schema_doc: dict[str, Any], schema: values.Schema
) -> None:
    chart_schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    release_keys = set(schema.release_keys.values())
    for key, prop in schema_doc["properties"].items():
        if key in release_keys:
            continue
        accepts = jsonschema.Draft7Validator(_chart_schema_of(chart_schema, key))
        offered = [*prop.get("enum", []), *[prop[b] for b in ("minimum", "maximum") if b in prop]]
        if "default" in prop:
            offered.append(prop["default"])
        for value in offered:
            problems = [e.message for e in accepts.iter_errors(value)]
            assert problems == [], f"{key}={value!r}: the chart refuses it: {problems}"


def test_the_gpu_constraint_lists_the_accelerator_choices(schema_doc: dict[str, Any]) -> None:
    requests = schema_doc["x-google-marketplace"]["clusterConstraints"]["resources"][0]
    platforms = requests["requests"]["gpu"]["nvidia.com/gpu"]["platforms"]
    assert platforms == schema_doc["properties"]["gpu.accelerator"]["enum"]


def test_triton_runs_as_its_own_account_with_no_api_access(
    schema_doc: dict[str, Any], schema: values.Schema, helm4: Path
) -> None:
    """No SERVICE_ACCOUNT property (schema.yaml says why): the chart creates the account,
    mounts no token, and carries the Workload Identity choice from the form."""
    types = {
        (prop.get("x-google-marketplace") or {}).get("type")
        for prop in schema_doc["properties"].values()
    }
    assert "SERVICE_ACCOUNT" not in types
    gsa = "triton-reader@my-project.iam.gserviceaccount.com"
    objects = _render(helm4, _resolve(schema, **{"serviceAccount.gcpServiceAccount": gsa}))
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == gsa
    assert account["automountServiceAccountToken"] is False
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False
    with pytest.raises(ValuesError, match=r"serviceAccount\.gcpServiceAccount"):
        _resolve(schema, **{"serviceAccount.gcpServiceAccount": "reader@gmail.com"})


def test_the_deploy_always_renders_the_application_named_after_the_release(
    schema: values.Schema, helm4: Path
) -> None:
    """Marketplace creates a placeholder Application named after the app instance."""
    objects = _render(helm4, _resolve(schema))
    applications = [o for o in objects if o["kind"] == "Application"]
    assert [a["metadata"]["name"] for a in applications] == ["t"]


def test_published_version_is_the_chart_version(schema_doc: dict[str, Any]) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert schema_doc["x-google-marketplace"]["publishedVersion"] == chart["version"]


def test_the_marketplace_doc_lists_every_property(schema: values.Schema) -> None:
    doc = (ROOT / "docs" / "marketplace.md").read_text()
    missing = [key for key in schema.properties if f"`{key}`" not in doc]
    assert missing == [], f"docs/marketplace.md does not describe {missing}"


def _chart_rules(node: dict[str, Any], chart_schema: dict[str, Any]) -> dict[str, Any]:
    """The pattern(s) and maxLength a chart value node applies, through `$ref`, `allOf` and a
    `then` keyed on a prefix (modelRepository's gs:// rules)."""
    rules: dict[str, Any] = {"patterns": set(), "maxLength": node.get("maxLength")}
    parts = [node, *node.get("allOf", []), node.get("then", {})]
    for part in parts:
        if "$ref" in part:
            name = part["$ref"].rpartition("/")[2]
            inner = _chart_rules(chart_schema["definitions"][name], chart_schema)
            rules["patterns"] |= inner["patterns"]
            rules["maxLength"] = rules["maxLength"] or inner["maxLength"]
        if "pattern" in part:
            rules["patterns"].add(part["pattern"])
    return rules


def test_the_form_and_the_chart_bound_every_string_alike(
    schema_doc: dict[str, Any], schema: values.Schema
) -> None:
    """Every pattern and length the form (and the deployer, for image parts) puts on a
    string, the chart's values.schema.json puts on the same value, so `helm install` users
    get the same checks."""
    chart_schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    release_keys = set(schema.release_keys.values())
    checked = 0
    for key, prop in schema.properties.items():
        if key in release_keys or prop.get("type") != "string" or "enum" in prop:
            continue
        rules = _chart_rules(_chart_schema_of(chart_schema, key), chart_schema)
        if "pattern" in prop:
            assert prop["pattern"] in rules["patterns"], f"{key}: the chart lacks the pattern"
        assert "maxLength" in prop or "pattern" in prop, f"{key}: the form bounds nothing"
        if "maxLength" in prop:
            assert rules["maxLength"] == prop["maxLength"], f"{key}: lengths differ"
        checked += 1
    assert checked >= 10
    tester = chart_schema["definitions"]["image"]["properties"]
    for part, kind in (("registry", "REGISTRY"), ("repository", "REPO_WITHOUT_REGISTRY")):
        assert tester[part]["pattern"] == IMAGE_PART_SCHEMAS[kind]["pattern"]
        assert tester[part]["maxLength"] == IMAGE_PART_SCHEMAS[kind]["maxLength"]
    assert tester["tag"]["pattern"] == IMAGE_PART_SCHEMAS["TAG"]["pattern"]


# (key, value, accepted): each checked against the deployer and the chart's schema alike.
BOUNDARIES: list[tuple[str, Any, bool]] = [
    ("ingress.host", ("a" * 49 + ".") * 5 + "abc", True),  # 253 characters
    ("ingress.host", ("a" * 49 + ".") * 5 + "abcd", False),  # 254
    ("ingress.host", "a" * 63 + ".example.com", True),
    ("ingress.host", "a" * 64 + ".example.com", False),
    ("ingress.host", "*.example.com", True),
    ("ingress.grpc.host", "grpc_1.example.com", False),
    ("ingress.grpc.host", "Grpc.example.com", False),
    ("modelRepository", "gs://bucket/models", True),
    ("modelRepository", "gs://my_bucket-1/a/b/", True),
    ("modelRepository", "gs://bucket", True),
    ("modelRepository", "gs://a.b.example.com/models", True),
    ("modelRepository", "gs://bucket/$(TRITON_ADMIN_KEY)", True),  # a legal object name
    ("modelRepository", "gs://b/models", False),  # buckets have 3 characters at least
    ("modelRepository", "gs://" + "b" * 63 + "/m", True),
    ("modelRepository", "gs://" + "b" * 64 + "/m", False),
    ("modelRepository", "gs://Bucket/m", False),
    ("modelRepository", "gs://-bucket/m", False),
    ("modelRepository", "gs://bucket//m", False),
    ("modelRepository", "gs://bucket/./m", False),
    ("modelRepository", "gs://bucket/a/../m", False),
    ("modelRepository", "gs://bucket/..m/.m/...", True),
    ("modelRepository", "gs://bucket/m\n", False),
    ("modelRepository", "gs://bucket/" + "m" * 1240, True),  # 1,252 characters at most
    ("modelRepository", "gs://bucket/" + "m" * 1241, False),
    ("gpu.accelerator", "nvidia-b200", True),
    ("gpu.accelerator", "nvidia-l4", True),
    ("gpu.accelerator", "amd-mi300x", False),
    ("image.registry", "nvcr.io", True),
    ("image.registry", "localhost:5000", True),
    ("image.registry", "Bad Registry!", False),
    ("image.registry", "https://nvcr.io", False),
    ("image.repository", "nvidia/tritonserver", True),
    ("image.repository", "a/b__c/d-e.f", True),
    ("image.repository", "NVIDIA/triton", False),
    ("image.repository", "nvidia//triton", False),
    ("image.tag", "24.10-py3", True),
    ("image.tag", "t" * 128, True),
    ("image.tag", "t" * 129, False),
    ("image.tag", "-rc1", False),
    ("image.tag", "$(id)", False),
    ("serviceAccount.gcpServiceAccount", "a" * 80 + "@p.iam.gserviceaccount.com", False),
]


@pytest.mark.parametrize(("key", "value", "accepted"), BOUNDARIES)
def test_the_deployer_and_the_chart_agree_on_each_boundary(
    schema: values.Schema, key: str, value: Any, accepted: bool
) -> None:
    chart_schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    try:
        _resolve(schema, **{key: value})
        deployer_accepts = True
    except ValuesError as exc:
        deployer_accepts = False
        assert key in str(exc)
    chart_node = jsonschema.Draft7Validator(_chart_schema_of(chart_schema, key))
    chart_accepts = chart_node.is_valid(value) and "\n" not in value
    assert (deployer_accepts, chart_accepts) == (accepted, accepted)


def test_helm_refuses_what_the_chart_schema_refuses(helm: Path) -> None:
    """Helm's own (Go) regular expressions read the patterns as Python's do."""
    for key, value in (
        ("ingress.host", ("a" * 49 + ".") * 5 + "abcd"),
        ("modelRepository", "gs://b/m"),
        ("image.registry", "Bad Registry!"),
    ):
        with pytest.raises(RenderError, match=key.rpartition(".")[2]):
            render.render(
                helm=helm,
                chart=CHART_DIR,
                release="t",
                namespace="ns",
                values=values.expand_dotted({"modelRepository": "gs://bucket/m", key: value}),
            )
    rendered = render.render(
        helm=helm,
        chart=CHART_DIR,
        release="t",
        namespace="ns",
        values={"modelRepository": "gs://bucket/m", "gpu": {"accelerator": "nvidia-b200"}},
    )
    deployment = next(o for o in rendered if o["kind"] == "Deployment")
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert selector["cloud.google.com/gke-accelerator"] == "nvidia-b200"
