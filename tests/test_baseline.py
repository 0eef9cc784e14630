"""How the upgrade tests judge a release's objects before and after (tests/baseline.py).

Cases: an unchanged release passes; an object deleted and created again (a new uid), a
Secret whose data changed, a changed selector, a changed Service port, an object removed or
added: each named; a removal or addition the baseline record documents (``{fullname}`` standing
for the release's full name) passes, for its ci file or for all (``*``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import baseline
from tests.baseline import Snapshot, compare

FULLNAME = "r-triton-inference-server"


def _objects() -> list[dict[str, Any]]:
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": FULLNAME, "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/instance": "r"}}},
        },
        {
            "kind": "Service",
            "metadata": {"name": FULLNAME, "uid": "u2"},
            "spec": {
                "selector": {"app.kubernetes.io/instance": "r"},
                "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "kind": "Secret",
            "metadata": {"name": f"{FULLNAME}-admin-key", "uid": "u3"},
            "data": {"admin-key": "a2V5"},
        },
    ]


def _after(change: str) -> Snapshot:
    objects = copy.deepcopy(_objects())
    deployment, service, secret = objects
    if change == "uid":
        deployment["metadata"]["uid"] = "u9"
    elif change == "data":
        secret["data"] = {"admin-key": "bmV3"}
    elif change == "selector":
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "server"
    elif change == "ports":
        service["spec"]["ports"][0]["port"] = 8080
    elif change == "removed":
        objects.remove(secret)
    elif change == "added":
        objects.append({"kind": "ConfigMap", "metadata": {"name": f"{FULLNAME}-new", "uid": "u4"}})
    return baseline.snapshot(objects)


def test_an_unchanged_release_passes() -> None:
    assert (
        compare(baseline.snapshot(_objects()), _after("none"), ci_file="x", fullname=FULLNAME) == []
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("uid", f"Deployment/{FULLNAME}: replaced (a new uid)"),
        ("data", f"Secret/{FULLNAME}-admin-key: data changed"),
        ("selector", f"Deployment/{FULLNAME}: selector changed"),
        ("ports", f"Service/{FULLNAME}: ports changed"),
        ("removed", f"objects removed: ['Secret/{FULLNAME}-admin-key'], documented: []"),
        ("added", f"objects added: ['ConfigMap/{FULLNAME}-new'], documented: []"),
    ],
)
def test_each_breaking_change_is_named(change: str, said: str) -> None:
    found = compare(baseline.snapshot(_objects()), _after(change), ci_file="x", fullname=FULLNAME)
    assert len(found) == 1 and found[0].startswith(said), found


@pytest.mark.parametrize("key", ["x", "*"])
def test_documented_changes_pass(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record = {
        "changes": {
            key: {"added": ["ConfigMap/{fullname}-new"], "removed": ["Secret/{fullname}-admin-key"]}
        }
    }
    monkeypatch.setattr(baseline, "RECORD", record)
    before = baseline.snapshot(_objects())
    after = _after("removed")
    after.objects.update(_after("added").objects)
    after.objects.pop(f"Secret/{FULLNAME}-admin-key", None)
    assert compare(before, after, ci_file="x", fullname=FULLNAME) == []
    assert compare(before, after, ci_file="other", fullname=FULLNAME) == (
        []
        if key == "*"
        else [
            f"objects removed: ['Secret/{FULLNAME}-admin-key'], documented: []",
            f"objects added: ['ConfigMap/{FULLNAME}-new'], documented: []",
        ]
    )
