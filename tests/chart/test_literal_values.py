"""User values in container commands, arguments and environment stay literal.

The kubelet expands `$(VAR)` in a container's command, args and env values, from the
container's environment, which holds the restricted-API key (TRITON_ADMIN_KEY). A value such as
`gs://bucket/$(TRITON_ADMIN_KEY)` would otherwise put the key into Triton's arguments and so
into its logs. Cases: for every value that lands there (modelRepository, through the model
cache and the FUSE mount too, server.extraArgs, server.metricsConfig, ldPreload, extraEnv),
rendered with Helm 3 and 4 and expanded as the kubelet does (`kubelet_expand`, a port of
Kubernetes' expansion), the container sees exactly the value written and never the key, while
the chart's own `$(TRITON_ADMIN_KEY)` in the restricted-API rule still expands to the key; the
local runner (demo/local.py), which resolves the container like the kubelet for the demo,
gives the same arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from demo.local import triton_container_launch
from tests.chart.helpers import Manifest, render_chart
from tests.chart.test_security import admin_key

HOSTILE = "$(TRITON_ADMIN_KEY)-$$(TRITON_ADMIN_KEY)-$$$(TRITON_ADMIN_KEY)-$-$$-${HOME}-$(X"
"""References in every escaped and unescaped form, and lone `$`s."""


def kubelet_expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion): `$$` is `$`,
    `$(NAME)` is the variable when defined and stays as written when not, an unclosed `$(`
    and any other `$` stay."""
    out: list[str] = []
    cursor = 0
    while cursor < len(text):
        char = text[cursor]
        if char != "$" or cursor + 1 == len(text):
            out.append(char)
            cursor += 1
            continue
        following = text[cursor + 1]
        if following == "$":
            out.append("$")
            cursor += 2
        elif following == "(":
            closer = text.find(")", cursor + 2)
            if closer == -1:
                out.append("$(")
                cursor += 2
            else:
                name = text[cursor + 2 : closer]
                out.append(env.get(name, f"$({name})"))
                cursor = closer + 1
        else:
            out.append("$" + following)
            cursor += 2
    return "".join(out)


def _containers(manifests: list[Manifest]) -> list[Manifest]:
    spec = next(m for m in manifests if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _as_started(container: Manifest, key: str) -> dict[str, list[str]]:
    """The container's command, args and env values after the kubelet's expansion."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = kubelet_expand(entry["value"], env)
        elif entry["name"] == "TRITON_ADMIN_KEY":
            env[entry["name"]] = key
    return {
        "command": [kubelet_expand(c, env) for c in container.get("command", [])],
        "args": [kubelet_expand(a, env) for a in container.get("args", [])],
        "env": [env[e["name"]] for e in container.get("env", []) if "value" in e],
    }


CACHE = {"enabled": True, "mountPath": f"/cache{HOSTILE}"}
# (values, container, field, what the container must see)
CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    (
        "modelRepository",
        {"modelRepository": f"gs://bucket/{HOSTILE}"},
        "triton",
        "args",
        f"--model-repository=gs://bucket/{HOSTILE}",
    ),
    (
        "server.extraArgs",
        {"server": {"extraArgs": [f"--log-file={HOSTILE}"]}},
        "triton",
        "args",
        f"--log-file={HOSTILE}",
    ),
    (
        "server.metricsConfig",
        {"server": {"metricsConfig": {"summary_quantiles": HOSTILE}}},
        "triton",
        "args",
        f"--metrics-config=summary_quantiles={HOSTILE}",
    ),
    ("ldPreload", {"ldPreload": HOSTILE}, "triton", "env", HOSTILE),
    ("extraEnv", {"extraEnv": {"USER_SETTING": HOSTILE}}, "triton", "env", HOSTILE),
    (
        "modelLoading.cache.mountPath (Triton)",
        {"modelLoading": {"cache": CACHE}},
        "triton",
        "args",
        f"--model-repository=/cache{HOSTILE}/repository",
    ),
    (
        "modelLoading.cache.mountPath (init container)",
        {"modelLoading": {"cache": CACHE}},
        "model-cache",
        "command",
        f"/cache{HOSTILE}/repository",
    ),
    (
        "modelRepository (init container)",
        {"modelRepository": f"gs://bucket/{HOSTILE}", "modelLoading": {"cache": CACHE}},
        "model-cache",
        "command",
        f"gs://bucket/{HOSTILE}",
    ),
    (
        "modelLoading.gcsFuse.mountPath",
        {"modelLoading": {"gcsFuse": {"enabled": True, "mountPath": f"/fuse{HOSTILE}"}}},
        "triton",
        "args",
        f"--model-repository=/fuse{HOSTILE}",
    ),
]


@pytest.mark.parametrize(
    ("values", "container", "part", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_user_value_reaches_the_container_as_written(
    helm: Path, values: dict[str, Any], container: str, part: str, expected: str
) -> None:
    manifests = render_chart(helm, {"modelRepository": "gs://bucket/models", **values})
    key = admin_key(manifests)
    started = {c["name"]: _as_started(c, key) for c in _containers(manifests)}
    assert expected in started[container][part]
    for name, seen in started.items():
        for part_name, strings in seen.items():
            leaked = [
                s
                for s in strings
                if key in s and not s.startswith(("--http-restricted-api=", "--grpc-restricted"))
            ]
            assert leaked == [], f"the admin key reaches {name}'s {part_name}"
    restricted = [a for a in started["triton"]["args"] if "restricted" in a]
    assert len(restricted) == 2
    assert all(a.endswith(f"triton-admin-key={key}") for a in restricted)


def test_the_local_runner_resolves_the_container_as_the_kubelet_does(helm: Path) -> None:
    manifests = render_chart(
        helm,
        {
            "modelRepository": f"gs://bucket/{HOSTILE}",
            "server": {"extraArgs": [f"--log-file={HOSTILE}"]},
            "extraEnv": {"USER_SETTING": HOSTILE},
        },
    )
    key = admin_key(manifests)
    launch = triton_container_launch(manifests)
    triton = next(c for c in _containers(manifests) if c["name"] == "triton")
    assert launch.args == _as_started(triton, key)["args"]
    assert f"--model-repository=gs://bucket/{HOSTILE}" in launch.args
    assert launch.env["USER_SETTING"] == HOSTILE
    assert sum(key in a for a in launch.args) == 2
