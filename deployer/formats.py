"""The shapes of the image properties Marketplace fills in, read from the chart.

``schema.yaml`` gives the image properties (``x-google-marketplace.images``) only a projection
type, so the deployer checks them with the chart's own image reference grammar: the types
``imageRegistry``, ``imageRepository`` and ``imageTag`` of ``values.schema.json`` (declared once
in ``values.yaml``), which the chart's image values use. A full reference and a repository with
its registry are those parts joined (``REGISTRY/REPOSITORY:TAG``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from deployer.errors import SchemaError

PART_TYPES: Final = {
    "REGISTRY": "imageRegistry",
    "REPO_WITHOUT_REGISTRY": "imageRepository",
    "TAG": "imageTag",
}
"""The chart type each part-of-an-image projection is checked with."""
TAG_MAX_LENGTH: Final = 128
"""A tag's most characters (the OCI distribution spec's, which the chart's imageTag pattern
states as its own bound): the part of a full reference's length the tag may take."""


def _closing(text: str, start: int) -> int:
    """Where the group opened at ``start`` closes (escapes and character classes skipped)."""
    depth, index, in_class = 0, start, False
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def pattern_body(pattern: str, *, name: str) -> str:
    """The expression a whole-string pattern (``^...$``) matches, without an outer ``(...)?``
    that only adds the empty string, so that it can be joined with others."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise SchemaError(
            f"the chart's type {name} has pattern {pattern!r}, which is not anchored (^...$): "
            "the deployer joins the image types into full references"
        )
    body = pattern[1:-1]
    if body.startswith("(") and body.endswith(")?") and _closing(body, 0) == len(body) - 2:
        return body[1:-2]
    return body


def image_part_schemas(chart_schema: dict[str, Any], *, source: str) -> dict[str, dict[str, Any]]:
    """The JSON schema of an image property, by its Marketplace projection type, from the
    chart schema's image types."""
    definitions = chart_schema.get("definitions") or {}
    missing = sorted(set(PART_TYPES.values()) - set(definitions))
    if missing:
        raise SchemaError(
            f"{source} has no type {', '.join(missing)}: the deployer checks Marketplace's image "
            "properties with the chart's image grammar (declare it in values.yaml with @define)"
        )
    parts = {kind: dict(definitions[name]) for kind, name in PART_TYPES.items()}
    registry, repository, tag = (
        pattern_body(parts[kind]["pattern"], name=PART_TYPES[kind]) for kind in PART_TYPES
    )
    with_registry = parts["REGISTRY"]["maxLength"] + 1 + parts["REPO_WITHOUT_REGISTRY"]["maxLength"]
    parts["REPO_WITH_REGISTRY"] = {
        "type": "string",
        "pattern": f"^{registry}/{repository}$",
        "maxLength": with_registry,
    }
    parts["FULL"] = {
        "type": "string",
        "pattern": f"^{registry}/{repository}:{tag}$",
        "maxLength": with_registry + 1 + TAG_MAX_LENGTH,
    }
    return parts


def load_image_part_schemas(chart: Path) -> dict[str, dict[str, Any]]:
    """``image_part_schemas`` of the chart in folder ``chart``."""
    path = chart / "values.schema.json"
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise SchemaError(f"cannot read the chart's schema {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not JSON: {exc}") from exc
    return image_part_schemas(document, source=str(path))
