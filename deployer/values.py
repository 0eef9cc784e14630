"""From the Marketplace form's values to the chart's values, checked against ``schema.yaml``.

``schema.yaml`` is a Marketplace schema v2: its ``properties`` are dotted chart value keys
(``image.tag``, ``server.logVerbose``) plus the Marketplace's own ``name`` and ``namespace``
(typed ``NAME`` and ``NAMESPACE``), and its ``x-google-marketplace.images`` name the image
properties. GKE Marketplace sends no image property: it sends ``__image_repo_prefix__``, and
the image properties are derived from it the way Google's ``expand_config.py`` derives them.
Every function here is pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deployer import companions, formats, values_input, yamlio
from deployer.errors import SchemaError, ValuesError
from deployer.values_input import shown

# Marketplace property types that are not chart values: they name the Helm release.
_RELEASE_TYPES = {"NAME": "name", "NAMESPACE": "namespace"}

IMAGE_REPO_PREFIX = "__image_repo_prefix__"
"""The key GKE Marketplace adds to a schema-v2 deploy's values (``provision.py``): where its
copies of the images live, such as ``gcr.io/PROJECT/APP``. Image ``NAME`` is at
``PREFIX/NAME:publishedVersion``, the image named ``""`` at ``PREFIX:publishedVersion``."""

FIXED_VALUES: dict[str, Any] = {"marketplace.enabled": True, "perfAnalyzer.enabled": False}
"""Chart values every deploy sets, never a form choice. ``marketplace.enabled`` renders the
Application: Marketplace shows the app through it, the deployer reports its phase there, and
the objects it owns go with it when it is deleted. Without it a one-click deploy would leave
Marketplace's placeholder Application pending for ever and orphan what it applied.
``perfAnalyzer.enabled`` stays off: its Job runs Triton's SDK image from NGC, which is no
image of the schema's, so Marketplace neither republishes nor vets it (a benchmark of several
gigabytes has no place in a one-click install; ``verify``'s tester is the chart's test pod)."""

LISTING_VALUES = {"partnerId": "marketplace.partnerId", "solutionId": "marketplace.solutionId"}
"""The listing's IDs, ``x-google-marketplace`` keys of ``schema.yaml`` (declared there once),
and the chart values each deploy passes them in: the chart writes them into the
Application's ``marketplace.cloud.google.com/deploy-info`` annotation."""


@dataclass(frozen=True)
class Schema:
    """The parts of ``schema.yaml`` the deployer uses."""

    properties: dict[str, dict[str, Any]]
    """Every key a values file may hold (image properties included), with its JSON schema."""
    required: tuple[str, ...]
    """Keys that must be given."""
    release_keys: dict[str, str]
    """``{"name": KEY, "namespace": KEY}``: the properties typed NAME and NAMESPACE."""
    published_version: str
    """``x-google-marketplace.publishedVersion``."""
    images: dict[str, dict[str, str]]
    """``x-google-marketplace.images``: each image's name (``""`` allowed) to its
    ``{property key: projection type}``."""
    partner_id: str = ""
    """``x-google-marketplace.partnerId``: the publisher's ID (Producer Portal), or empty."""
    solution_id: str = ""
    """``x-google-marketplace.solutionId``: the product's ID, given with ``partner_id``."""

    def listing_values(self) -> dict[str, str]:
        """The chart values that carry the listing's IDs (none when the schema has none)."""
        ids = {"partnerId": self.partner_id, "solutionId": self.solution_id}
        return {LISTING_VALUES[k]: v for k, v in ids.items() if v}

    def json_schema(self) -> dict[str, Any]:
        """A JSON schema for a flat values mapping; unknown keys are refused."""
        return {
            "type": "object",
            "properties": {key: _plain(prop) for key, prop in self.properties.items()},
            "required": list(self.required),
            "additionalProperties": False,
        }


def _plain(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A property without its ``x-google-marketplace`` block, which jsonschema ignores anyway
    but which would otherwise clutter error messages."""
    return {k: v for k, v in prop.items() if k != "x-google-marketplace"}


def _marketplace_type(prop: Mapping[str, Any]) -> str | None:
    block = prop.get("x-google-marketplace")
    return block.get("type") if isinstance(block, Mapping) else None


def parse_schema(
    document: Any,
    *,
    image_parts: Mapping[str, Mapping[str, Any]],
    source: str = "schema.yaml",
) -> Schema:
    """Read a parsed ``schema.yaml``; raises SchemaError saying what is missing.
    ``image_parts`` is the JSON schema of an image property by its projection type, the
    chart's (``formats.load_image_part_schemas``)."""
    if not isinstance(document, Mapping):
        raise SchemaError(f"{source} is not a YAML mapping: write a Marketplace schema v2")
    header = document.get("x-google-marketplace")
    if not isinstance(header, Mapping) or header.get("schemaVersion") != "v2":
        raise SchemaError(
            f"{source} has no `x-google-marketplace.schemaVersion: v2`: the deployer reads "
            "Marketplace schema v2 only"
        )
    properties = document.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise SchemaError(f"{source} has no `properties`: list the form's values there")
    merged: dict[str, dict[str, Any]] = {str(k): dict(v or {}) for k, v in properties.items()}
    images: dict[str, dict[str, str]] = {}
    for image_name, image in (header.get("images") or {}).items():
        projections = images.setdefault(str(image_name), {})
        for key, prop in ((image or {}).get("properties") or {}).items():
            if prop.get("type") not in image_parts:
                raise SchemaError(
                    f"{source}: image {image_name!r} property {key!r} has type "
                    f"{prop.get('type')!r}; use one of {sorted(image_parts)}"
                )
            projections[str(key)] = str(prop["type"])
            # Typed by hand (helm-style values) when no image prefix is given.
            merged.setdefault(str(key), dict(image_parts[prop["type"]]))
    release_keys = {
        role: key
        for key, prop in merged.items()
        if (role := _RELEASE_TYPES.get(_marketplace_type(prop) or ""))
    }
    fixed = sorted(set(merged) & {*FIXED_VALUES, *LISTING_VALUES.values()})
    if fixed:
        raise SchemaError(
            f"{source} offers {', '.join(fixed)} on the form, but the deployer always sets "
            "it: remove the property"
        )
    ids = {key: header.get(key) or "" for key in LISTING_VALUES}
    if not all(isinstance(v, str) for v in ids.values()) or bool(ids["partnerId"]) != bool(
        ids["solutionId"]
    ):
        raise SchemaError(
            f"{source}: give x-google-marketplace.partnerId and solutionId together, as "
            "strings (the IDs Producer Portal gives the listing), or neither"
        )
    missing = sorted(set(_RELEASE_TYPES.values()) - set(release_keys))
    if missing:
        raise SchemaError(
            f"{source} has no property typed {', '.join(m.upper() for m in missing)}: "
            "Marketplace passes the application's name and namespace through them"
        )
    try:
        jsonschema.Draft7Validator.check_schema(
            {"type": "object", "properties": {k: _plain(p) for k, p in merged.items()}}
        )
    except jsonschema.SchemaError as exc:
        raise SchemaError(f"{source} is not a valid JSON schema: {exc.message}") from exc
    return Schema(
        properties=merged,
        required=tuple(str(k) for k in document.get("required") or ()),
        release_keys=release_keys,
        published_version=str(header.get("publishedVersion", "")),
        images=images,
        partner_id=ids["partnerId"],
        solution_id=ids["solutionId"],
    )


def _read_schema(path: Path) -> Any:
    try:
        return yamlio.load(path.read_text())
    except OSError as exc:
        raise SchemaError(f"cannot read the schema {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path} is not valid YAML: {exc}") from exc


def overlay_test_schema(
    document: Mapping[str, Any], test_document: Any, *, source: str = "the test schema"
) -> dict[str, Any]:
    """``schema.yaml`` with the test schema's properties laid over it, as Google's
    ``overlay_test_schema.py`` does for ``mpdev verify`` (which passes no values): each
    property the test schema declares replaces the schema's whole; none may change its
    ``x-google-marketplace`` type."""
    merged = copy.deepcopy(dict(document))
    properties = merged.setdefault("properties", {})
    tests = test_document.get("properties") if isinstance(test_document, Mapping) else None
    for key, prop in (tests or {}).items():
        if _marketplace_type(prop or {}) != _marketplace_type(properties.get(key) or {}):
            raise SchemaError(
                f"{source}: property {key} changes its x-google-marketplace type, which a "
                "test schema may not do"
            )
        properties[key] = prop
    return merged


def load_schema(path: Path, *, chart: Path, test_schema: Path | None = None) -> Schema:
    """Read ``schema.yaml`` from ``path``, with ``test_schema``'s properties laid over it
    when that file exists (``/data-test/schema.yaml`` for ``verify``); its image properties
    are checked with the image grammar of the chart in folder ``chart``."""
    document = _read_schema(path)
    if test_schema is not None and test_schema.is_file() and isinstance(document, Mapping):
        document = overlay_test_schema(document, _read_schema(test_schema), source=str(test_schema))
    image_parts = formats.load_image_part_schemas(chart)
    return parse_schema(document, image_parts=image_parts, source=str(path))


def load_values_file(path: Path) -> dict[str, Any]:
    """Read a values file (the Marketplace's ``/data/values.yaml`` or ``--values FILE``)
    within the limits of ``deployer.values_input``."""
    return values_input.read_values_file(path)


def load_values_dir(path: Path, schema: Schema) -> dict[str, Any]:
    """Read values the way GKE Marketplace mounts them: a ConfigMap at ``/data/values``, one
    file per key. A string property keeps its text as is (a tag ``1.10`` stays a string);
    other values are read as YAML."""
    string_keys = frozenset(
        {IMAGE_REPO_PREFIX} | {k for k, p in schema.properties.items() if p.get("type") == "string"}
    )
    return values_input.read_values_folder(path, string_keys)


def load_values(path: Path, schema: Schema) -> dict[str, Any]:
    """Values from a YAML file, or from a Marketplace values folder."""
    if path.is_dir():
        return load_values_dir(path, schema)
    return load_values_file(path)


def flatten(values: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Turn nested values (``image: {tag: x}``) into the schema's dotted keys (``image.tag``).

    A mapping is opened only where its key is not itself a property, so an object-valued
    property stays whole; keys that match nothing stay as they are and are refused later.
    """
    flat: dict[str, Any] = {}
    twice: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if prefix in properties or not isinstance(value, Mapping) or not value:
            if prefix in flat:
                twice.append(prefix)
            flat[prefix] = value
            return
        for key, inner in value.items():
            walk(f"{prefix}.{key}", inner)

    for key, value in values.items():
        walk(str(key), value)
    if twice:
        raise ValuesError(
            [
                f"{shown(key)}: given twice, once as a dotted key and once nested: keep one"
                for key in twice
            ]
        )
    return flat


def image_values(schema: Schema, prefix: Any) -> dict[str, str]:
    """Every image property, derived from ``__image_repo_prefix__`` as ``expand_config.py``
    does: ``REGISTRY/REPO`` is ``PREFIX/NAME`` (``PREFIX`` for the image named ``""``), split
    at its first ``/``; the tag is ``publishedVersion``."""
    if not isinstance(prefix, str) or not prefix:
        raise ValuesError(
            [
                f"{IMAGE_REPO_PREFIX}: {prefix!r} is not a registry path; give the prefix the "
                "images were published under, such as gcr.io/PROJECT/APP"
            ]
        )
    if not schema.published_version:
        raise ValuesError(
            [
                f"{IMAGE_REPO_PREFIX}: the schema has no x-google-marketplace.publishedVersion, "
                "which is the images' tag: add it to the schema"
            ]
        )
    tag = schema.published_version
    derived: dict[str, str] = {}
    for name, projections in schema.images.items():
        registry_repo = f"{prefix}/{name}" if name else prefix
        registry, slash, repo = registry_repo.partition("/")
        if not slash:
            raise ValuesError(
                [
                    f"{IMAGE_REPO_PREFIX}: {prefix!r} names no repository for image {name!r}; "
                    "give REGISTRY/PATH, such as gcr.io/PROJECT/APP"
                ]
            )
        parts = {
            "FULL": f"{registry_repo}:{tag}",
            "REGISTRY": registry,
            "REPO_WITH_REGISTRY": registry_repo,
            "REPO_WITHOUT_REGISTRY": repo,
            "TAG": tag,
        }
        derived.update({key: parts[kind] for key, kind in projections.items()})
    return derived


def with_images(schema: Schema, flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat values with ``__image_repo_prefix__`` replaced by the image properties it
    derives; values without it are returned as they are (image values typed by hand, or
    the chart's defaults). An image property both typed and derived is refused, as
    ``expand_config.py`` refuses a generated property that already has a value."""
    if IMAGE_REPO_PREFIX not in flat:
        return dict(flat)
    rest = {k: v for k, v in flat.items() if k != IMAGE_REPO_PREFIX}
    derived = image_values(schema, flat[IMAGE_REPO_PREFIX])
    both = sorted(set(rest) & set(derived))
    if both:
        raise ValuesError(
            [
                f"{key}: given, and derived from {IMAGE_REPO_PREFIX}; give one of them"
                for key in both
            ]
        )
    return {**rest, **derived}


def _key_of(error: jsonschema.ValidationError) -> str:
    if error.path:
        return ".".join(str(p) for p in error.path)
    if error.validator == "required":
        return str(error.message).split("'")[1]
    return "(values)"


SHOWN_UNKNOWN_KEYS = 10
"""Unknown keys named one by one; the rest are counted (a file may hold thousands)."""


def _unknown_keys(unknown: list[str], schema: Schema) -> list[str]:
    allowed = ", ".join(sorted(schema.properties))
    problems = [f"{shown(unknown[0])}: unknown key; the schema allows {allowed}"]
    problems += [f"{shown(key)}: unknown key" for key in unknown[1:SHOWN_UNKNOWN_KEYS]]
    if len(unknown) > SHOWN_UNKNOWN_KEYS:
        problems.append(f"{len(unknown) - SHOWN_UNKNOWN_KEYS:,} more unknown keys not listed")
    return problems


def validate(schema: Schema, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check flat ``values`` against the schema and fill in defaults.

    Returns the values with every defaulted property added. Raises ValuesError listing every
    problem (type, required, enum, minimum/maximum, pattern, unknown key), each with its key.
    """
    validator = jsonschema.Draft7Validator(schema.json_schema())
    # A pattern's `$` also matches before a final line break in Python (not in Helm's Go), so
    # line breaks and other control characters are refused here, for every string.
    problems = [
        f"{shown(key)}: holds a line break or another control character; give one line"
        for key, value in values.items()
        if isinstance(value, str) and values_input.CONTROL_OR_LINE_BREAK.search(value)
    ]
    # A default counts for `required`, as in expand_config.py: a test schema makes a
    # required property verifiable by giving it a default.
    defaults = {k: p["default"] for k, p in schema.properties.items() if "default" in p}
    given = {**defaults, **values}
    for error in sorted(validator.iter_errors(given), key=lambda e: _key_of(e)):
        key = _key_of(error)
        if error.validator == "additionalProperties":
            problems.extend(_unknown_keys(sorted(set(values) - set(schema.properties)), schema))
            continue
        title = schema.properties.get(key, {}).get("title")
        hint = f" ({title})" if title else ""
        problems.append(f"{key}{hint}: {error.message}")
    if problems:
        raise ValuesError(problems)
    return given


def expand_dotted(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c": 2}`` → ``{"a": {"b": 1, "c": 2}}``: the nested form Helm reads."""
    nested: dict[str, Any] = {}
    for key in sorted(flat):
        *parents, leaf = key.split(".")
        node = nested
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                conflict = ".".join(parents[: i + 1])
                raise ValuesError([f"{key}: {conflict} is both a value and a parent of values"])
            node = child
        if isinstance(node.get(leaf), dict):
            raise ValuesError([f"{key}: it is both a value and a parent of values"])
        node[leaf] = flat[key]
    return nested


def is_system_namespace(namespace: str) -> bool:
    """Namespaces Kubernetes and GKE keep for themselves (``kube-system``, ``kube-public``,
    ``kube-node-lease``, ``gke-managed-*``, ``gmp-system``): an app installed there runs
    beside the cluster's own components and their privileges."""
    return namespace.startswith(("kube-", "gke-", "gmp-"))


@dataclass(frozen=True)
class DeployValues:
    """What one deploy needs: the release and the chart's nested values."""

    name: str
    """The Helm release name, from the property typed NAME."""
    namespace: str
    """The namespace to deploy into, from the property typed NAMESPACE."""
    chart_values: dict[str, Any]
    """Nested values for ``helm template``."""
    derived: tuple[companions.Derived, ...] = ()
    """What the deployer set besides the form's choices, and why (``deployer.companions``)."""


def resolve(schema: Schema, values: Mapping[str, Any]) -> DeployValues:
    """Derive the image properties from ``__image_repo_prefix__`` if given, validate raw
    (flat or nested) values, fill defaults, split off name and namespace, add the companion
    values the choices need (``deployer.companions``), the FIXED_VALUES and the listing's IDs,
    and expand the rest into the chart's nested values."""
    checked = validate(schema, with_images(schema, flatten(values, schema.properties)))
    name = str(checked.pop(schema.release_keys["name"], ""))
    namespace = str(checked.pop(schema.release_keys["namespace"], ""))
    if is_system_namespace(namespace):
        raise ValuesError(
            [
                f"{schema.release_keys['namespace']}: {namespace!r} belongs to Kubernetes or GKE "
                "(kube-*, gke-*, gmp-*): deploy Triton into a namespace of its own"
            ]
        )
    derived = companions.derive(checked)
    chart_values = expand_dotted(
        {**companions.apply(checked, derived), **FIXED_VALUES, **schema.listing_values()}
    )
    return DeployValues(
        name=name, namespace=namespace, chart_values=chart_values, derived=tuple(derived)
    )
