"""Label selectors as the metrics readers take them: the Kubernetes string form the HPA
controller sends (``a=b,c in (d,e)``), and ``LabelSelector`` objects (a PodMonitoring's)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from standins.kube.metrics.errors import MetricsApiError, go_quoted


def _label_not_allowed(key: str) -> MetricsApiError:
    return MetricsApiError(400, "BadRequest", f"Metric label: {go_quoted(key)} is not allowed")


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key op values``."""

    key: str
    operator: str
    """One of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``, ``>``, ``<``."""
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return value in self.values
        if self.operator in ("!=", "notin"):
            return value not in self.values
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if value is None:
            return False
        number = float(value)
        return (
            number > float(self.values[0])
            if self.operator == ">"
            else number < float(self.values[0])
        )


_TERM = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<absent>[^\s,=!<>()]+)"
    r"|(?P<key>[^\s,=!<>()]+)\s*(?:(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def parse_selector(text: str) -> list[Requirement]:
    """The requirements of a label selector in Kubernetes' string form (``a=b,c in (d,e)``).
    Raises ``MetricsApiError`` (400) for text that is not one."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    requirements = []
    for term in filter(str.strip, terms):
        match = _TERM.match(term)
        if not match:
            raise MetricsApiError(400, "BadRequest", f"invalid label selector term {term!r}")
        if match["absent"]:
            requirements.append(Requirement(match["absent"], "!"))
        elif match["op"]:
            operator = "=" if match["op"] == "==" else match["op"]
            requirements.append(Requirement(match["key"], operator, (match["value"],)))
        elif match["set"]:
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["key"], match["set"], values))
        else:
            requirements.append(Requirement(match["key"], "exists"))
    return requirements


def check_keys(
    requirements: Sequence[Requirement], prefixes: Sequence[str], names: Sequence[str]
) -> list[Requirement]:
    """The requirements that filter series (``reducer`` set apart), refusing keys the adapter
    refuses (``filterForSelector``)."""
    kept = []
    for requirement in requirements:
        if requirement.operator == "!":
            raise MetricsApiError(
                400, "BadRequest", "Label selector with operator DoesNotExist is not allowed"
            )
        if not (requirement.key.startswith(tuple(prefixes)) or requirement.key in names):
            raise _label_not_allowed(requirement.key)
        if requirement.key != "reducer":
            kept.append(requirement)
    return kept


def selects(match_labels: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return match_labels.items() <= labels.items()


def selector_selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes ``LabelSelector`` (matchLabels and matchExpressions) against labels."""
    if not selects(selector.get("matchLabels") or {}, labels):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In":
            held = labels.get(key) in values
        elif operator == "NotIn":
            held = labels.get(key) not in values
        else:
            held = (key in labels) == (operator == "Exists")
        if not held:
            return False
    return True
