"""The subset of PromQL the chart's KEDA triggers use, as the metrics stand-in evaluates it
over the series (standins/kube/metrics/store.py): ``sum(rate(name{matchers}[window]))`` and
``sum(name{matchers})``, with ``=``, ``!=``, ``=~``, ``!~``; anything else is refused, not
guessed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from standins.kube.metrics.errors import MetricsApiError

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_QUERY = re.compile(
    r"^\s*sum\(\s*(?:(?P<rate>rate)\(\s*)?(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"\{(?P<matchers>[^}]*)\}(?:\[(?P<window>[0-9]+[smh])\]\s*\))?\s*\)\s*$"
)


@dataclass(frozen=True)
class PromQuery:
    """``sum(rate(name{matchers}[window]))`` or ``sum(name{matchers})``."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]
    rate: bool

    @classmethod
    def parse(cls, text: str) -> PromQuery:
        match = _QUERY.match(text)
        if not match or bool(match["rate"]) != bool(match["window"]):
            raise MetricsApiError(
                500, "InternalError", f"query outside the PromQL this stand-in reads: {text}"
            )
        terms = list(_MATCHER.finditer(match["matchers"]))
        if "".join(t[0] for t in terms) != match["matchers"]:
            raise MetricsApiError(
                500, "InternalError", f"label matchers not read: {match['matchers']}"
            )
        matchers = tuple((t[1], t[2], json.loads(f'"{t[3]}"')) for t in terms)
        return cls(match["name"], matchers, bool(match["rate"]))

    def selects(self, labels: Mapping[str, str]) -> bool:
        for key, operator, value in self.matchers:
            actual = labels.get(key, "")
            found = re.fullmatch(value, actual) is not None if "~" in operator else actual == value
            if found == operator.startswith("!"):
                return False
        return True
