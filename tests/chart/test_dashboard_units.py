"""The Grafana dashboard's units agree with its queries (chart/dashboards/triton.json).

Each panel's PromQL is reduced to a physical dimension: Triton's `*_us` counters are
microseconds, its other counters and gauges are counts or ratios (no dimension), `rate()`
divides by seconds, `/` and `*` combine dimensions, aggregations keep them. The panel's Grafana
unit must name that dimension: `µs` is a duration, `reqps` a count per second, `suffix:µs/s`
microseconds per second. Microseconds and seconds are kept apart on purpose: a rate of a
microsecond counter is µs per second, not a duration, and a panel that shows it in µs tells
the reader a queue time it is not.

Cases: every panel's unit matches its query; the queue-load panel shows the HPA's queueTime
signal in its unit (µs/s); the reduction itself on the forms the dashboard uses, and its
refusals (unknown metric family, function or unit; adding different dimensions).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import pytest

from tests.conftest import CHART_DIR

DASHBOARD = json.loads((CHART_DIR / "dashboards" / "triton.json").read_text())

Dimension = frozenset[tuple[str, int]]
"""Base units with their exponents, e.g. {("µs", 1), ("s", -1)}; empty is dimensionless."""


def dimension(**exponents: int) -> Dimension:
    return frozenset((unit, power) for unit, power in exponents.items() if power)


DIMENSIONLESS = dimension()
MICROSECONDS = dimension(us=1)
PER_SECOND = dimension(s=-1)

GRAFANA_UNITS: dict[str, Dimension] = {
    "none": DIMENSIONLESS,
    "short": DIMENSIONLESS,
    "percentunit": DIMENSIONLESS,
    "reqps": PER_SECOND,
    "µs": MICROSECONDS,
    "suffix:µs/s": dimension(us=1, s=-1),
}
"""The Grafana units this dashboard may use, each with the dimension it displays."""

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<braces>\{[^}]*\})|(?P<range>\[[^\]]*\])|(?P<op>[()/*+,-]))"
)
_AGGREGATIONS = {"sum", "avg", "max", "min"}
_KEEPS_DIMENSION = {"abs", "ceil", "floor", "round", "clamp_min", "clamp_max"}
_PER_SECOND = {"rate", "irate", "deriv"}


def metric_dimension(name: str) -> Dimension:
    """Dimension of one Triton metric family, from its documented name."""
    if not name.startswith(("nv_inference_", "nv_gpu_", "nv_cpu_")):
        raise ValueError(f"{name}: not a Triton metric this check knows the unit of")
    if name.endswith("_us"):
        return MICROSECONDS
    if name.endswith("_bytes"):
        return dimension(bytes=1)
    return DIMENSIONLESS  # request, inference and execution counts; utilization ratios


def _combine(left: Dimension, right: Dimension, sign: int) -> Dimension:
    total: Counter[str] = Counter(dict(left))
    for unit, power in right:
        total[unit] += sign * power
    return dimension(**total)


@dataclass
class _Parser:
    """A recursive-descent reading of the PromQL subset dashboards use: numbers, selectors
    with matchers and ranges, `rate`-like functions, aggregations with `by`/`without`, the four
    arithmetic operators and parentheses."""

    tokens: list[tuple[str, str]]
    position: int = 0

    @classmethod
    def of(cls, query: str) -> _Parser:
        tokens: list[tuple[str, str]] = []
        rest = query.strip()
        while rest:
            match = _TOKEN.match(rest)
            if match is None or not match.group(0).strip():
                raise ValueError(f"cannot read the query at {rest[:30]!r}")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            rest = rest[match.end() :].strip()
        return cls(tokens)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise ValueError(f"expected {value!r}, found {token[1]!r}")
        self.position += 1
        return token

    def expression(self) -> Dimension:
        result = self.term()
        while self.peek()[1] in {"/", "*", "+", "-"}:
            _, operator = self.take()
            right = self.term()
            if operator in {"+", "-"}:
                if right != result:
                    raise ValueError(f"adds {sorted(result)} and {sorted(right)}")
            else:
                result = _combine(result, right, 1 if operator == "*" else -1)
        return result

    def _grouping(self) -> None:
        if self.peek()[1] in {"by", "without"}:
            self.take()
            self.take("(")
            while self.take()[1] != ")":
                pass

    def term(self) -> Dimension:
        kind, value = self.take()
        if kind == "number":
            return DIMENSIONLESS
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if kind != "name":
            raise ValueError(f"unexpected {value!r}")
        if value in _AGGREGATIONS:
            self._grouping()
            self.take("(")
            inner = self.expression()
            self.take(")")
            self._grouping()
            return inner
        if self.peek()[1] == "(":
            if value not in _PER_SECOND | _KEEPS_DIMENSION | {"increase"}:
                raise ValueError(f"{value}(): a function this check does not know")
            self.take("(")
            inner = self.expression()
            while self.peek()[1] == ",":  # clamp_min(x, 0): the bound has x's dimension
                self.take()
                self.expression()
            self.take(")")
            return _combine(inner, PER_SECOND, 1) if value in _PER_SECOND else inner
        while self.peek()[0] in {"braces", "range"}:
            self.take()
        return metric_dimension(value)


def query_dimension(query: str) -> Dimension:
    """The physical dimension of a dashboard query's result."""
    parser = _Parser.of(query)
    result = parser.expression()
    if parser.peek()[0] != "end":
        raise ValueError(f"unread rest of the query from {parser.peek()[1]!r}")
    return result


def unit_dimension(unit: str) -> Dimension:
    if unit not in GRAFANA_UNITS:
        raise ValueError(f"Grafana unit {unit!r}: not one this check knows the dimension of")
    return GRAFANA_UNITS[unit]


PANELS = [panel for panel in DASHBOARD["panels"] if panel.get("targets")]


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: str(p["title"]))
def test_panel_unit_matches_its_query(panel: dict[str, object]) -> None:
    unit = str(panel["fieldConfig"]["defaults"]["unit"])  # type: ignore[index]
    for target in panel["targets"]:  # type: ignore[attr-defined]
        shown, computed = unit_dimension(unit), query_dimension(target["expr"])
        assert shown == computed, (
            f"{panel['title']}: unit {unit} shows {sorted(shown)}, "
            f"the query computes {sorted(computed)}"
        )


def test_queue_load_panel_shows_the_hpa_signal_in_its_unit() -> None:
    (panel,) = [p for p in PANELS if "queueTime" in p["title"]]
    (target,) = panel["targets"]
    assert "rate(nv_inference_queue_duration_us" in target["expr"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "suffix:µs/s"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('sum by (pod) (rate(nv_inference_queue_duration_us{pod=~"$pod"}[5m]))', "us/s"),
        (
            "sum by (model) (rate(nv_inference_queue_duration_us[1m])) / "
            "sum by (model) (rate(nv_inference_request_success[1m]))",
            "us",
        ),
        ("rate(nv_inference_request_success[1m])", "1/s"),
        ("avg(nv_gpu_utilization) by (pod)", "1"),
        ("rate(nv_inference_queue_duration_us[1m]) / 1e6", "us/s"),
        ("increase(nv_inference_compute_infer_duration_us[1m])", "us"),
    ],
)
def test_reduction_of_dashboard_forms(query: str, expected: str) -> None:
    named = {
        "us/s": dimension(us=1, s=-1),
        "us": MICROSECONDS,
        "1/s": PER_SECOND,
        "1": DIMENSIONLESS,
    }
    assert query_dimension(query) == named[expected]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("rate(node_cpu_seconds_total[1m])", "not a Triton metric"),
        ("histogram_quantile(0.9, nv_inference_request_duration_us)", "does not know"),
        ("nv_inference_queue_duration_us + nv_inference_request_success", "adds"),
        ("sum(nv_inference_count", "expected ')'"),
    ],
)
def test_reduction_refuses_what_it_cannot_judge(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        query_dimension(query)


def test_unknown_grafana_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="not one this check knows"):
        unit_dimension("dtdurations")
