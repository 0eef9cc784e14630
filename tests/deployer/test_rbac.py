"""The deployer's rights, as schema.yaml asks Marketplace for them and deployer/rbac.yaml
(generated from them) grants them for `make e2e`.

Cases: Roles only (no ClusterRole, no wildcards), bound to rbac.yaml's account, and they
cover every kind the chart renders (with each chart/ci values file, and the Marketplace fixture
chart) plus what readiness, verify and the Application's phase read; `make e2e`'s values pass
this schema and its script authenticates as rbac.yaml's account.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import kmock
import yaml

from deployer import render, values
from standins.emulator.cluster import EXTRA_RESOURCES, crd_resources
from standins.kube.control_plane import GKE_CRDS_DIR
from tests.conftest import CHART_DIR, ROOT, require_crds
from tests.deployer.conftest import MARKETPLACE_CHART

RBAC = ROOT / "deployer" / "rbac.yaml"
APPLY_VERBS = {"get", "create", "patch", "delete"}


def _role_rules(schema_doc: dict[str, Any]) -> list[dict[str, Any]]:
    roles = schema_doc["x-google-marketplace"]["deployerServiceAccount"]["roles"]
    assert [r["type"] for r in roles] == ["Role"], "namespaced rights only"
    assert all(r["rulesType"] == "CUSTOM" for r in roles)
    return list(roles[0]["rules"])


def test_the_deployer_has_least_privilege(schema_doc: dict[str, Any]) -> None:
    rules = _role_rules(schema_doc)
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    manifests = list(yaml.safe_load_all(RBAC.read_text()))
    assert {m["kind"] for m in manifests} == {"ServiceAccount", "Role", "RoleBinding"}
    role = next(m for m in manifests if m["kind"] == "Role")
    binding = next(m for m in manifests if m["kind"] == "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


def _granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def _plurals() -> dict[tuple[str, str], str]:
    """(group, kind) → resource name, from the same discovery data the emulator serves."""
    resources = kmock.ResourcesArray()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # inside kmock
        resources.load_bundled()
    plurals = {
        (str(r.group), str(resources[r].kind)): str(r.plural)
        for r in resources
        if resources[r].kind
    }
    extra = dict(EXTRA_RESOURCES)
    extra.update(crd_resources(require_crds()))
    extra.update(crd_resources(GKE_CRDS_DIR))
    plurals.update({(g, info["kind"]): p for (g, _, p), info in extra.items()})
    return plurals


def _rendered_kinds(helm: Path) -> set[tuple[str, str]]:
    charts = [(CHART_DIR, f) for f in sorted((CHART_DIR / "ci").glob("*-values.yaml"))]
    fixture_values = CHART_DIR / "ci" / "00-default-values.yaml"
    charts.append((MARKETPLACE_CHART, fixture_values))
    kinds: set[tuple[str, str]] = set()
    for chart, values_file in charts:
        rendered = render.render(
            helm=helm,
            chart=chart,
            release="t",
            namespace="ns",
            values=yaml.safe_load(values_file.read_text()),
        )
        kinds |= {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in rendered}
    return kinds


def test_the_role_covers_every_kind_the_chart_renders(
    schema_doc: dict[str, Any], helm4: Path
) -> None:
    granted = _granted(_role_rules(schema_doc))
    plurals = _plurals()
    kinds = _rendered_kinds(helm4)
    # The Marketplace fixture renders a cluster-scoped kind on purpose; a namespaced Role
    # cannot grant it, and the deployer reports the API's refusal.
    kinds.discard(("scheduling.k8s.io", "PriorityClass"))
    lacking = []
    for group, kind in sorted(kinds):
        missing = APPLY_VERBS - granted.get((group, plurals[(group, kind)]), set())
        if missing:
            lacking.append(f"{kind} ({group or 'core'}): needs {sorted(missing)}")
    assert lacking == [], "add these to schema.form.yaml's deployerServiceAccount (make generate)"
    # What readiness, verify and the Application phase need besides applying.
    assert {"get", "list"} <= granted[("", "pods")]
    assert "get" in granted[("", "pods/log")]
    assert "list" in granted[("", "events")]
    assert "patch" in granted[("app.k8s.io", "applications/status")]


def test_the_e2e_path_uses_this_schema_and_role(schema: values.Schema) -> None:
    e2e_values = Path(__file__).parent / "e2e-values.yaml"
    values.resolve(schema, values.load_values_file(e2e_values))
    script = (Path(__file__).parent / "e2e.sh").read_text()
    account = next(m for m in yaml.safe_load_all(RBAC.read_text()) if m["kind"] == "ServiceAccount")
    assert f"kubectl create token {account['metadata']['name']}" in script
    assert "deployer/rbac.yaml" in script
