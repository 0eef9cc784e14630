"""The listing's metadata on the Application, with Google's own code as the oracle: what
``deploy.sh`` checks before it applies anything (``validate_app_resource.py``), and what its
schema reader accepts (``config_helper``).

Cases:
- the deployer's plan, for the form's defaults and for each ingress mode and autoscaling,
  renders an Application Google's validator accepts against schema.yaml: the
  ``marketplace.cloud.google.com/deploy-info`` annotation carries schema.yaml's partnerId and
  solutionId, and ``spec.descriptor.version`` is publishedVersion;
- Applications Google's validator refuses (no annotation, not JSON, a missing ID, another
  partner or product, another version) are refused by the deployer too, and those it accepts
  (the schema's IDs; any IDs where the schema has none) are accepted;
- a schema with one of partnerId and solutionId is refused by both; a form that offers the IDs
  is refused;
- a deploy whose Application would be refused exits 2 before any request, saying what to set.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import actions, application, values
from deployer.errors import RenderError, SchemaError
from standins.emulator.cluster import EmulatedCluster
from tests.conftest import CHART_DIR
from tests.deployer.conftest import IMAGE_PARTS, SCHEMA, Run, write_values
from tests.deployer.google_tools import DEPLOYER_UTIL, google_module

FORMS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "istio": {"ingress.mode": "istio", "ingress.host": "triton.example.com"},
    "gateway-api": {"ingress.mode": "gatewayApi", "ingress.grpc.enabled": False},
    "autoscaling": {"autoscaling.enabled": True, "metrics.podMonitoring.enabled": True},
}


def google_validates(objects: list[dict[str, Any]], schema: Path, tmp_path: Path) -> str | None:
    """None when ``validate_app_resource.py`` accepts the manifests, else its complaint."""
    google_module("validate_app_resource")  # skips where Google's tooling is absent
    manifests = tmp_path / "resources.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    done = subprocess.run(
        [
            sys.executable,
            str(DEPLOYER_UTIL / "validate_app_resource.py"),
            f"--schema_file={schema}",
            f"--manifests={manifests}",
        ],
        cwd=DEPLOYER_UTIL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return None if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


def _plan(helm4: Path, tmp_path: Path, **form: Any) -> actions.Plan:
    return actions.make_plan(
        actions.Inputs(
            chart=CHART_DIR, schema=SCHEMA, values=write_values(tmp_path, **form), helm=helm4
        )
    )


@pytest.mark.parametrize("form", sorted(FORMS))
def test_google_accepts_the_application(helm4: Path, tmp_path: Path, form: str) -> None:
    plan = _plan(helm4, tmp_path, **FORMS[form])
    assert plan.application is not None
    assert google_validates(plan.objects, SCHEMA, tmp_path) is None
    header = yaml.safe_load(SCHEMA.read_text())["x-google-marketplace"]
    info = json.loads(plan.application["metadata"]["annotations"][application.DEPLOY_INFO])
    assert info == {"partner_id": header["partnerId"], "product_id": header["solutionId"]}
    assert plan.application["spec"]["descriptor"]["version"] == header["publishedVersion"]


def _with_info(app: dict[str, Any], info: str | None) -> dict[str, Any]:
    changed = copy.deepcopy(app)
    annotations = changed["metadata"].setdefault("annotations", {})
    annotations.pop(application.DEPLOY_INFO, None)
    if info is not None:
        annotations[application.DEPLOY_INFO] = info
    return changed


MUTATIONS: dict[str, tuple[str | None, str | None]] = {
    # name: (the annotation, the version; None keeps the chart's version)
    "no annotation": (None, None),
    "not JSON": ("partner_id=triton-on-gke", None),
    "no product_id": ('{"partner_id": "triton-on-gke"}', None),
    "another partner": ('{"partner_id": "x", "product_id": "triton-inference-server"}', None),
    "another product": ('{"partner_id": "triton-on-gke", "product_id": "x"}', None),
    "another version": (
        '{"partner_id": "triton-on-gke", "product_id": "triton-inference-server"}',
        "9.9.9",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_what_google_refuses_the_deployer_refuses(
    helm4: Path, tmp_path: Path, mutation: str
) -> None:
    plan = _plan(helm4, tmp_path)
    assert plan.application is not None
    info, version = MUTATIONS[mutation]
    app = _with_info(plan.application, info)
    if version:
        app["spec"]["descriptor"]["version"] = version
    others = [o for o in plan.objects if o is not plan.application]
    assert google_validates([app, *others], SCHEMA, tmp_path) is not None
    schema = values.load_schema(SCHEMA, chart=CHART_DIR)
    with pytest.raises(RenderError, match=application.DEPLOY_INFO + "|descriptor.version"):
        application.check_listing(
            app,
            partner_id=schema.partner_id,
            solution_id=schema.solution_id,
            published_version=schema.published_version,
        )


def _schema_without_ids(tmp_path: Path) -> Path:
    document = yaml.safe_load(SCHEMA.read_text())
    for key in ("partnerId", "solutionId"):
        del document["x-google-marketplace"][key]
    path = tmp_path / "schema-without-ids.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_without_ids_in_the_schema_any_ids_pass(helm4: Path, tmp_path: Path) -> None:
    plan = _plan(helm4, tmp_path)
    assert plan.application is not None
    app = _with_info(plan.application, '{"partner_id": "a", "product_id": "b"}')
    schema_path = _schema_without_ids(tmp_path)
    assert google_validates([app], schema_path, tmp_path) is None
    schema = values.load_schema(schema_path, chart=CHART_DIR)
    assert (schema.partner_id, schema.solution_id) == ("", "")
    application.check_listing(
        app, partner_id="", solution_id="", published_version=schema.published_version
    )


@pytest.mark.parametrize("kept", ["partnerId", "solutionId"])
def test_one_id_without_the_other_is_refused(tmp_path: Path, kept: str) -> None:
    config_helper = google_module("config_helper")
    document = yaml.safe_load(SCHEMA.read_text())
    other = "solutionId" if kept == "partnerId" else "partnerId"
    del document["x-google-marketplace"][other]
    with pytest.raises(config_helper.InvalidSchema):
        config_helper.Schema.load_yaml(yaml.safe_dump(document))
    with pytest.raises(SchemaError, match="partnerId and solutionId together"):
        values.parse_schema(document, image_parts=IMAGE_PARTS)


def test_a_form_may_not_offer_the_ids() -> None:
    document = yaml.safe_load(SCHEMA.read_text())
    document["properties"]["marketplace.partnerId"] = {"type": "string"}
    with pytest.raises(SchemaError, match=r"offers marketplace\.partnerId on the form"):
        values.parse_schema(document, image_parts=IMAGE_PARTS)


def test_a_deploy_google_would_refuse_sends_nothing(
    run: Run, emulator: EmulatedCluster, tmp_path: Path
) -> None:
    result = run("deploy", "--schema", str(_schema_without_ids(tmp_path)))
    assert result.code == 2, result.err
    assert f"has no {application.DEPLOY_INFO} annotation" in result.err
    assert "set x-google-marketplace.partnerId and solutionId in schema.yaml" in result.err
    assert emulator.requests() == []
