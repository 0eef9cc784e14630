"""YAML the deployer reads from sources it trusts (helm's output, its own schema.yaml).

Form values come through :mod:`deployer.values_input`, whose bounded loader refuses hostile
documents; these do not need that, only speed: libyaml's safe loader, where PyYAML was built
with it (its wheels are), parses helm's output about ten times faster than the pure-Python one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """One YAML document, as ``yaml.safe_load`` reads it."""
    return yaml.load(text, Loader=SAFE_LOADER)


def load_all(text: str) -> Iterator[Any]:
    """Every YAML document, as ``yaml.safe_load_all`` reads them."""
    return yaml.load_all(text, Loader=SAFE_LOADER)
