"""`verify` does what Google's deploy_with_tests.sh does, with Google's scripts as the oracle.

Cases:
- the image's /data-test/schema.yaml laid over schema.yaml is what Google's
  overlay_test_schema.py makes of them; with it, the values mpdev verify passes (name,
  namespace and the image prefix only) resolve as expand_config.expand resolves them, the
  required modelRepository from the test schema's default; Google's validate_schema.py
  accepts the schema and the overlaid one; a test schema that changes a
  property's Marketplace type is refused by both; a missing test schema changes nothing;
- the testers are the objects Google's set_app_labels.py, process_helm_hooks.py
  (--deploy_tests) and separate_tester_resources.py make of the chart's render: the same
  objects, labelled with the app's name, annotated
  `marketplace.cloud.google.com/verification: test`, owned by the Application whatever
  their kind;
- the Dockerfile ships the test schema where deploy_with_tests.sh reads it, and the build
  argument that sets its model repository replaces the placeholder.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import actions, application, values
from deployer.errors import SchemaError
from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import IMAGE_PARTS, SCHEMA, TEST_SCHEMA
from tests.deployer.google_tools import DEPLOYER_UTIL, google_module

PLACEHOLDER = "gs://goog-verify-model-repository-unset/models"


def google_script(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run one of Google's deployer_util scripts as the deployer image runs it."""
    google_module("log_util")  # skips where Google's tooling is absent
    return subprocess.run(
        [sys.executable, str(DEPLOYER_UTIL / script), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_overlay_is_the_one_overlay_test_schema_makes(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    done = google_script(
        "overlay_test_schema.py",
        f"--test_schema={TEST_SCHEMA}",
        f"--original_schema={SCHEMA}",
        f"--output={out}",
    )
    assert done.returncode == 0, done.stderr
    theirs = yaml.safe_load(out.read_text())
    ours = values.overlay_test_schema(
        yaml.safe_load(SCHEMA.read_text()), yaml.safe_load(TEST_SCHEMA.read_text())
    )
    assert ours == theirs
    assert values.load_schema(
        SCHEMA, test_schema=TEST_SCHEMA, chart=CHART_DIR
    ) == values.parse_schema(theirs, image_parts=IMAGE_PARTS)


def test_what_mpdev_verify_passes_resolves_as_expand_config_resolves_it() -> None:
    config_helper = google_module("config_helper")
    expand_config = google_module("expand_config")
    overlaid = values.overlay_test_schema(
        yaml.safe_load(SCHEMA.read_text()), yaml.safe_load(TEST_SCHEMA.read_text())
    )
    # mpdev verify's parameters: {} with name and namespace stitched in; provision adds the prefix.
    sent = {"name": "apptest-1", "namespace": "apptest-1", values.IMAGE_REPO_PREFIX: "gcr.io/p/t"}
    expected = expand_config.expand(copy.deepcopy(sent), config_helper.Schema(overlaid))
    assert expected["modelRepository"] == PLACEHOLDER
    schema = values.load_schema(SCHEMA, test_schema=TEST_SCHEMA, chart=CHART_DIR)
    assert values.validate(schema, values.with_images(schema, sent)) == expected
    with pytest.raises(expand_config.MissingRequiredProperty, match="modelRepository"):
        expand_config.expand(copy.deepcopy(sent), config_helper.Schema.load_yaml_file(str(SCHEMA)))


def test_google_validates_the_schema_and_its_overlay(tmp_path: Path) -> None:
    overlaid = tmp_path / "schema.yaml"
    overlaid.write_text(
        yaml.safe_dump(
            values.overlay_test_schema(
                yaml.safe_load(SCHEMA.read_text()), yaml.safe_load(TEST_SCHEMA.read_text())
            )
        )
    )
    for schema_file in (SCHEMA, overlaid):
        # What mpdev verify runs on /data/schema.yaml before the deploy.
        done = google_script("validate_schema.py", f"--schema_file={schema_file}")
        assert done.returncode == 0, done.stderr


def test_a_test_schema_may_not_change_a_marketplace_type(tmp_path: Path) -> None:
    changed = tmp_path / "test-schema.yaml"
    changed.write_text(yaml.safe_dump({"properties": {"name": {"type": "string"}}}))
    done = google_script(
        "overlay_test_schema.py",
        f"--test_schema={changed}",
        f"--original_schema={SCHEMA}",
        f"--output={tmp_path / 'out.yaml'}",
    )
    assert done.returncode != 0
    assert "Changing x-google-marketplace type is not allowed" in done.stderr
    with pytest.raises(SchemaError, match="name changes its x-google-marketplace type"):
        values.load_schema(SCHEMA, test_schema=changed, chart=CHART_DIR)


def test_without_a_test_schema_the_schema_is_unchanged(tmp_path: Path) -> None:
    absent = tmp_path / "absent.yaml"
    assert values.load_schema(SCHEMA, test_schema=absent, chart=CHART_DIR) == values.load_schema(
        SCHEMA, chart=CHART_DIR
    )


def test_the_testers_are_those_googles_scripts_separate(helm4: Path, tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(
        yaml.safe_dump(
            {"name": "tri", "namespace": "apps", "modelRepository": "gs://bucket/models"}
        )
    )
    plan = actions.make_plan(
        actions.Inputs(chart=CHART_DIR, schema=SCHEMA, values=values_file, helm=helm4)
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all([*plan.objects, *plan.tests]))
    done = google_script(
        "set_app_labels.py",
        f"--manifests={manifest}",
        f"--dest={manifest}",
        "--name=tri",
        "--namespace=apps",
    )
    assert done.returncode == 0, done.stderr
    done = google_script("process_helm_hooks.py", f"--manifest={manifest}", "--deploy_tests")
    assert done.returncode == 0, done.stderr
    testers_file = tmp_path / "tester.yaml"
    done = google_script(
        "separate_tester_resources.py",
        "--app_uid=uid-1",
        "--app_name=tri",
        f"--app_api_version={application.API_VERSION}",
        f"--manifests={manifest}",
        f"--out_manifests={tmp_path / 'resources.yaml'}",
        f"--out_test_manifests={testers_file}",
    )
    assert done.returncode == 0, done.stderr
    theirs = [d for d in yaml.safe_load_all(testers_file.read_text()) if d]
    assert plan.application is not None
    ours = application.prepare_testers(
        plan.tests,
        namespace="apps",
        namespaced={("", "Pod")},
        application=plan.application,
        application_uid="uid-1",
    )
    assert [t["kind"] for t in ours] == ["Pod"]
    assert ours == theirs


def _dockerfile() -> str:
    return (ROOT / "Dockerfile.deployer").read_text()


def test_the_image_ships_the_test_schema_where_deploy_with_tests_reads_it() -> None:
    dockerfile = _dockerfile()
    assert "COPY deployer/marketplace/test-schema.yaml /data-test/schema.yaml" in dockerfile
    assert f"ARG VERIFY_MODEL_REPOSITORY={PLACEHOLDER}" in dockerfile
    assert f"s|{PLACEHOLDER}|${{VERIFY_MODEL_REPOSITORY}}|" in dockerfile
    assert TEST_SCHEMA.read_text().count(PLACEHOLDER) == 1, "the one place the build replaces"
    document: dict[str, Any] = yaml.safe_load(TEST_SCHEMA.read_text())
    assert set(document["properties"]) == {"modelRepository"}
