"""The shapes of the strings the form and the chart take, where the deployer needs them itself.

``schema.yaml`` gives the image properties Marketplace fills in (``x-google-marketplace.images``)
only a type, so their patterns are here, one per projection type; ``chart/values.schema.json``
writes the same patterns for ``image.registry``, ``image.repository`` and ``image.tag`` (a
test holds them equal). The grammar is the container image reference's (registry host and
port, lowercase path components joined by ``.``, ``_``, ``__`` or dashes, tags of at most
128 word characters, dots and dashes).
"""

from __future__ import annotations

from typing import Any

_REGISTRY = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"{_COMPONENT}(/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

REGISTRY_PATTERN = rf"^({_REGISTRY})?$"
"""A registry host with an optional port; empty means the default registry."""
REPOSITORY_PATTERN = rf"^{_REPOSITORY}$"
TAG_PATTERN = rf"^{_TAG}$"

IMAGE_PART_SCHEMAS: dict[str, dict[str, Any]] = {
    "REGISTRY": {"type": "string", "pattern": REGISTRY_PATTERN, "maxLength": 253},
    "REPO_WITHOUT_REGISTRY": {"type": "string", "pattern": REPOSITORY_PATTERN, "maxLength": 255},
    "REPO_WITH_REGISTRY": {
        "type": "string",
        "pattern": rf"^{_REGISTRY}/{_REPOSITORY}$",
        "maxLength": 509,
    },
    "TAG": {"type": "string", "pattern": TAG_PATTERN},
    "FULL": {
        "type": "string",
        "pattern": rf"^{_REGISTRY}/{_REPOSITORY}:{_TAG}$",
        "maxLength": 638,
    },
}
"""The JSON schema of an image property, by its Marketplace projection type."""
