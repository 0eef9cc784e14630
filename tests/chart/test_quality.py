"""Chart quality: values, schema, documentation, NOTES.

Cases: values.yaml and every ci file validate against values.schema.json, and the schema is
strict (no object without additionalProperties: false or a declared value type); every value is
documented with a `# --` comment; NOTES.txt prints a
readiness curl, the Locust command, how to read the admin key, the address for each ingress
mode, the autoscaler watch, and the check of an existing standby PriorityClass against the
cluster autoscaler's cutoff.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scripts import values_declarations
from tests.chart.helpers import CI_VALUES_FILES
from tests.conftest import CHART_DIR, HELM4

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()


def test_values_yaml_matches_schema() -> None:
    jsonschema.validate(yaml.safe_load(VALUES_TEXT), SCHEMA)


@pytest.mark.parametrize("path", CI_VALUES_FILES, ids=lambda p: p.name)
def test_ci_values_match_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


def _open_objects(schema: Any, path: str = "") -> list[str]:
    """Paths of object schemas that accept any key without saying what the values are."""
    found: list[str] = []
    if isinstance(schema, dict):
        open_object = schema.get("type") == "object" and "properties" in schema
        if open_object and "additionalProperties" not in schema:
            found.append(path or "/")
        for key, value in schema.items():
            found += _open_objects(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            found += _open_objects(item, f"{path}/{index}")
    return found


def test_schema_is_strict() -> None:
    assert _open_objects(SCHEMA) == []


def test_every_value_is_documented() -> None:
    declared = values_declarations.parse(VALUES_TEXT).values
    assert all(d.description for d in declared)
    assert VALUES_TEXT.startswith("# yaml-language-server: $schema=values.schema.json")


def test_undocumented_value_is_reported() -> None:
    with pytest.raises(values_declarations.DeclarationError, match=r"b\.c"):
        values_declarations.parse("# -- a\na: 1\nb:\n  c: 2\n")


def notes(tmp_path: Path, *settings: str) -> str:
    """NOTES.txt as `helm install` prints it for release `demo` in namespace `serving`.

    Helm 4 only: Helm 3's `install --dry-run=client` still asks a cluster for its version."""
    helm = HELM4
    command = [
        str(helm),
        "install",
        "demo",
        str(CHART_DIR),
        "--dry-run=client",
        "-n",
        "serving",
        "--set",
        "modelRepository=gs://bucket/models",
    ]
    for setting in settings:
        command += ["--set", setting]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_print_ready_to_paste_commands(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "rollout status deployment/demo-triton-inference-server" in text
    assert "curl -sf http://${INGRESS_HOST}:${INGRESS_PORT}/v2/health/ready" in text
    locust = "locust -f locust/locustfile-bert-large.py -H http://${INGRESS_HOST}:${INGRESS_PORT}"
    assert locust in text
    assert "helm test demo -n serving" in text
    assert "get secret demo-triton-inference-server-admin-key" in text


@pytest.mark.parametrize(
    ("settings", "address"),
    [
        (
            ["ingress.mode=istio", "ingress.host=t.example.com"],
            "-n istio-system get service istio-ingressgateway",
        ),
        (
            [
                "ingress.mode=gatewayApi",
                "ingress.grpc.host=grpc.example.com",
                "networkPolicy.proxyOnlySubnet=10.129.0.0/23",
            ],
            "get gateway demo-triton-inference-server -o jsonpath='{.status.addresses[0].value}'",
        ),
        (["service.type=LoadBalancer"], "get service demo-triton-inference-server -o jsonpath"),
        ([], "port-forward service/demo-triton-inference-server 8000:8000 8001:8001"),
    ],
    ids=["istio", "gateway-api", "load-balancer", "none"],
)
def test_notes_print_the_address_for_each_mode(
    tmp_path: Path, settings: list[str], address: str
) -> None:
    assert address in notes(tmp_path, *settings)


def test_notes_ask_to_check_an_existing_standby_priority_class(tmp_path: Path) -> None:
    """Its value cannot be read at render time: NOTES print the check and the cutoff."""
    text = notes(tmp_path, "standby.enabled=true", "standby.existingPriorityClass=spare")
    assert "kubectl get priorityclass spare -o jsonpath='{.value}" in text
    assert "expendable-pods" in text and "at least -10" in text
    assert "get priorityclass" not in notes(tmp_path, "standby.enabled=true")


def test_notes_show_the_autoscaler(tmp_path: Path) -> None:
    text = notes(tmp_path, "autoscaling.enabled=true", "metrics.podMonitoring.enabled=true")
    assert "get hpa demo-triton-inference-server --watch" in text
