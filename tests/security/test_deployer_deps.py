"""The packages `make audit` hands to pip-audit: what the deployer image installs.

Cases: the declared dependencies are pyproject's, each pinned the same in constraints.txt; pins
come from pip's dry-run report (names canonical); a resolved package constraints.txt does not
hold is reported, since the image would take whatever is newest.
"""

from __future__ import annotations

from security import deployer_deps
from tests.conftest import ROOT


def test_the_declared_dependencies_are_pinned_alike_in_constraints() -> None:
    constraints = deployer_deps.constraint_pins((ROOT / "constraints.txt").read_text())
    for requirement in deployer_deps.declared(ROOT):
        name, _, version = requirement.partition("==")
        assert version, f"{requirement}: the deployer's dependencies are pinned"
        assert constraints[name.lower()] == version


def test_pins_come_from_the_dry_run_report() -> None:
    report = {
        "install": [
            {"metadata": {"name": "PyYAML", "version": "6.0.3"}},
            {"metadata": {"name": "typing_extensions", "version": "4.16.0"}},
        ]
    }
    resolved = deployer_deps.pins_from_report(report)
    assert resolved == {"pyyaml": "6.0.3", "typing-extensions": "4.16.0"}
    constraints = deployer_deps.constraint_pins("# comment\nPyYAML==6.0.3\n")
    assert deployer_deps.unpinned(resolved, constraints) == ["typing-extensions"]
