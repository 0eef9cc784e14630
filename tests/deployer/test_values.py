"""From schema.yaml and a values file to chart values.

Cases:
- the project's schema.yaml parses: name/namespace roles found, image properties merged in;
- schemas without schemaVersion v2, without NAME/NAMESPACE, with an unknown image type,
  not valid JSON schema, or offering a value the deployer fixes are refused with what to fix;
- every resolved deploy renders the Application (marketplace.enabled), which values cannot
  turn off, with the listing's IDs from the schema;
- validation lists every problem with its key at once (type, required, enum, minimum,
  maximum, pattern, unknown key) and adds the property's title; release name and namespace
  must be DNS labels;
- defaults fill only what was left out; image values typed by hand are accepted (the
  Marketplace's `__image_repo_prefix__` is in test_marketplace_images.py);
- nested values are flattened onto dotted properties, dotted keys expanded back; a key that
  is both a value and a parent is refused;
- schema and values files: missing, broken YAML, not a mapping; an empty values file is
  no values;
- a Marketplace values folder (one file per key, ConfigMap internals skipped): strings kept
  as text, other values typed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import values
from deployer.errors import SchemaError, ValuesError
from tests.conftest import CHART_DIR
from tests.deployer.conftest import IMAGE_PARTS

MINIMAL: dict[str, Any] = {
    "x-google-marketplace": {"schemaVersion": "v2"},
    "properties": {
        "name": {"type": "string", "x-google-marketplace": {"type": "NAME"}},
        "namespace": {"type": "string", "x-google-marketplace": {"type": "NAMESPACE"}},
        "replicas": {"type": "integer", "default": 1, "minimum": 1, "title": "Replicas"},
    },
}

RELEASE_VALUES = {"name": "t", "namespace": "ns", "modelRepository": "gs://bucket/models"}
"""The values every deploy needs."""


def test_the_project_schema_parses(schema: values.Schema) -> None:
    assert schema.release_keys == {"name": "name", "namespace": "namespace"}
    for image_key, kind in (
        ("image.registry", "REGISTRY"),
        ("image.repository", "REPO_WITHOUT_REGISTRY"),
        ("image.tag", "TAG"),
    ):
        assert schema.properties[image_key] == IMAGE_PARTS[kind]
    assert "modelRepository" in schema.required


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("x-google-marketplace"), "schemaVersion: v2"),
        (lambda s: s["properties"].pop("namespace"), "no property typed NAMESPACE"),
        (lambda s: s.pop("properties"), "has no `properties`"),
        (
            lambda s: s["x-google-marketplace"].update(
                images={"": {"properties": {"img": {"type": "DIGEST"}}}}
            ),
            "property 'img' has type 'DIGEST'",
        ),
        (
            lambda s: s["properties"]["replicas"].update(minimum="one"),
            "not a valid JSON schema",
        ),
        (
            lambda s: s["properties"].update({"marketplace.enabled": {"type": "boolean"}}),
            "offers marketplace.enabled on the form, but the deployer always sets it",
        ),
    ],
)
def test_broken_schemas_are_refused(mutate: Any, message: str) -> None:
    document = yaml.safe_load(yaml.safe_dump(MINIMAL))
    mutate(document)
    with pytest.raises(SchemaError, match=message):
        values.parse_schema(document, image_parts=IMAGE_PARTS)


@pytest.mark.parametrize(
    ("load", "error", "unreadable"),
    [
        (functools.partial(values.load_schema, chart=CHART_DIR), SchemaError, "cannot read the"),
        (values.load_values_file, ValuesError, "cannot read the values file"),
    ],
)
def test_files_that_cannot_be_read(
    load: Callable[[Path], Any], error: type[Exception], unreadable: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=unreadable):
        load(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("properties: [unclosed")
    with pytest.raises(error, match="not valid YAML"):
        load(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(error, match="YAML mapping"):
        load(listed)


def test_every_problem_is_listed_with_its_key(schema: values.Schema) -> None:
    bad = {
        **RELEASE_VALUES,
        "modelRepository": "s3://not-gcs",
        "replicaCount": 0,
        "server.logVerbose": 9,
        "server.modelControlMode": "sometimes",
        "service.type": 3,
        "gpuCount": 2,
    }
    with pytest.raises(ValuesError) as caught:
        values.validate(schema, bad)
    problems = caught.value.problems
    keys = [p.split(" ")[0].rstrip(":") for p in problems]
    assert sorted(set(keys)) == sorted(
        [
            "gpuCount",
            "modelRepository",
            "replicaCount",
            "server.logVerbose",
            "server.modelControlMode",
            "service.type",
        ]
    )
    text = str(caught.value)
    assert "replicaCount (Triton replicas): 0 is less than the minimum of 1" in text
    assert "'sometimes' is not one of ['none', 'poll', 'explicit']" in text
    assert "does not match" in text
    assert "gpuCount: unknown key" in text
    assert "3 is not of type 'string'" in text, "a value may break more than one rule"


def test_required_values_are_named(schema: values.Schema) -> None:
    with pytest.raises(ValuesError) as caught:
        values.validate(schema, {})
    assert {p.split(":")[0] for p in caught.value.problems} == {
        "name",
        "namespace",
        "modelRepository (Model repository)",
    }


def test_defaults_fill_only_what_is_left_out(schema: values.Schema) -> None:
    given = {
        **RELEASE_VALUES,
        "replicaCount": 3,
        "image.registry": "marketplace.gcr.io",
        "image.repository": "nvidia/triton",
        "image.tag": "0.1.0",
    }
    filled = values.validate(schema, given)
    assert filled["replicaCount"] == 3
    assert filled["server.modelControlMode"] == "none"
    assert filled["service.type"] == "ClusterIP"
    assert filled["image.registry"] == "marketplace.gcr.io"


def test_resolve_splits_release_and_nests_values(schema: values.Schema) -> None:
    resolved = values.resolve(
        schema,
        {
            **RELEASE_VALUES,
            "server": {"logVerbose": 1},
            "image.tag": "24.10-py3",
        },
    )
    assert (resolved.name, resolved.namespace) == ("t", "ns")
    assert resolved.chart_values["server"] == {"logVerbose": 1, "modelControlMode": "none"}
    assert resolved.chart_values["image"] == {"tag": "24.10-py3"}
    assert "name" not in resolved.chart_values
    # Every deploy renders the Application, whatever the form holds, with the listing's IDs.
    assert resolved.chart_values["marketplace"] == {
        "enabled": True,
        "partnerId": "triton-on-gke",
        "solutionId": "triton-inference-server",
    }


def test_the_application_switch_is_not_a_form_value(schema: values.Schema) -> None:
    with pytest.raises(ValuesError, match=r"marketplace\.enabled: unknown key"):
        values.resolve(schema, {**RELEASE_VALUES, "marketplace": {"enabled": False}})


def test_flatten_stops_at_properties() -> None:
    properties = {"a.b": {}, "c": {"type": "object"}}
    flat = values.flatten({"a": {"b": 1}, "c": {"x": 1}, "d": {"e": {"f": 2}}}, properties)
    assert flat == {"a.b": 1, "c": {"x": 1}, "d.e.f": 2}


def test_expand_dotted_and_conflicts() -> None:
    assert values.expand_dotted({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    with pytest.raises(ValuesError, match="both a value and a parent"):
        values.expand_dotted({"a": 1, "a.b": 2})
    with pytest.raises(ValuesError, match="both a value and a parent"):
        values.expand_dotted({"a.b.c": 1, "a.b": 2})


def test_an_empty_values_file_is_no_values(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert values.load_values_file(empty) == {}


def test_a_marketplace_values_folder(schema: values.Schema, tmp_path: Path) -> None:
    folder = tmp_path / "values"
    (folder / "..2026_11_28").mkdir(parents=True)
    for key, text in {
        "name": "t",
        "namespace": "ns",
        "modelRepository": "gs://bucket/models",
        "replicaCount": "2",
        "image.tag": "1.10",
    }.items():
        (folder / key).write_text(text)
    (folder / "..data").symlink_to(folder / "..2026_11_28")
    loaded = values.load_values(folder, schema)
    assert loaded == {
        "name": "t",
        "namespace": "ns",
        "modelRepository": "gs://bucket/models",
        "replicaCount": 2,
        "image.tag": "1.10",
    }
    (folder / "replicaCount").write_text("[")
    with pytest.raises(
        ValuesError, match=r"replicaCount \(line 2 of .*/replicaCount\): not valid YAML"
    ):
        values.load_values(folder, schema)


@pytest.mark.parametrize(
    ("key", "bad"), [("name", "Triton_1"), ("name", "t" * 54), ("namespace", "-ns")]
)
def test_release_names_must_be_dns_labels(schema: values.Schema, key: str, bad: str) -> None:
    with pytest.raises(ValuesError, match=f"  - {key}: "):
        values.validate(schema, {**RELEASE_VALUES, key: bad})
