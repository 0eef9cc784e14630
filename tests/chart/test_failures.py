"""Values the chart refuses, each with a message that says what to set.

Cases: a mistyped key, a wrong type, replicas out of range, a bad enum, no model repository,
an existing ServiceAccount without a name, a grace period shorter than the drain, MIG with a
sharing strategy GKE does not combine with it, an extra argument not written `--flag=value`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helpers import HelmFailedError, render_chart

REPO = {"modelRepository": "gs://bucket/models"}

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("mistyped-key", {**REPO, "replicaCont": 2}, "additional properties 'replicaCont'"),
    ("wrong-type", {**REPO, "replicaCount": "two"}, "/replicaCount': got string, want integer"),
    ("replicas-too-many", {**REPO, "replicaCount": 101}, "/replicaCount': maximum"),
    ("replicas-negative", {**REPO, "replicaCount": -1}, "/replicaCount': minimum"),
    ("bad-enum", {**REPO, "service": {"type": "Ingress"}}, "/service/type"),
    ("nested-mistyped-key", {**REPO, "gpu": {"cuont": 1}}, "additional properties 'cuont'"),
    ("no-model-repository", {}, "modelRepository is required: set it"),
    (
        "existing-account-unnamed",
        {**REPO, "serviceAccount": {"create": False}},
        "serviceAccount.name is required when serviceAccount.create is false",
    ),
    (
        "grace-shorter-than-drain",
        {**REPO, "terminationGracePeriodSeconds": 20},
        "raise terminationGracePeriodSeconds to at least 45",
    ),
    (
        "mig-with-mps",
        {**REPO, "gpu": {"partitionSize": "1g.5gb", "sharing": {"strategy": "mps"}}},
        "gpu.partitionSize (MIG) combines only with gpu.sharing.strategy=time-sharing",
    ),
    ("extra-arg-not-a-flag", {**REPO, "server": {"extraArgs": ["load bert"]}}, "extraArgs/0"),
]


@pytest.mark.parametrize(("values", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_clear_message(helm: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailedError) as failure:
        render_chart(helm, values)
    assert message in failure.value.stderr
