"""schema.yaml with the chart (the form is generated from the chart's declarations and
schema.form.yaml: tests/deployer/test_marketplace_form.py; the deployer's rights: test_rbac.py).

Cases (all read chart/ and schema.yaml, so they follow the chart as it grows):
- the image properties land on the values the chart really puts in the Triton container
  and the helm test (Marketplace tester) pod;
- the schema's defaults render with real helm (every choice, and every combination a
  derivation reads, deploys: test_form_matrix.py);
- Triton's account: no SERVICE_ACCOUNT property, the chart's own account mounts no token and
  carries the Workload Identity annotation from the form; a bad GSA email is refused;
- every deploy renders the Application, named after the release (Marketplace's placeholder);
- docs/marketplace.md describes every property;
- at each boundary of a string the form takes (lengths, DNS labels, Cloud Storage paths,
  image references), the deployer and the chart's values.schema.json accept the same, and
  helm's Go regular expressions read the patterns as Python's do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from deployer import render, values
from deployer.errors import RenderError, ValuesError
from tests.conftest import CHART_DIR, ROOT


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


def _chart_schema_of(chart_schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The chart schema's node for a dotted key (through `$ref`), able to validate alone."""
    node = chart_schema
    for part in dotted.split("."):
        if "$ref" in node:
            node = chart_schema["definitions"][node["$ref"].rpartition("/")[2]]
        node = node["properties"][part]
    return {**node, "definitions": chart_schema["definitions"]}


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


def test_the_marketplace_doc_lists_every_property(schema: values.Schema) -> None:
    doc = (ROOT / "docs" / "marketplace.md").read_text()
    missing = [key for key in schema.properties if f"`{key}`" not in doc]
    assert missing == [], f"docs/marketplace.md does not describe {missing}"


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
