"""The local runner: the chart's Triton container resolved like the kubelet, and the real
``tritonserver`` from nvidia-pytriton started, made ready and stopped on loopback.

Cases: ``$(VAR)`` expansion rules (defined, undefined, ``$$``, chained env values); the rendered
chart's container resolved with the key from its own Secret and no reference left; a rendering
with no Deployment, no such container, or a Secret reference it does not hold; local arguments
replace only ports, addresses, repository and GPU metrics; the flags the local Triton knows,
read from its ``--help``, and the chart's default arguments it lacks (``--http-max-input-size``,
Triton 2.59's), left out with a line at the head of the log while the server still starts;
a server that starts and answers;
a server that exits at start (missing repository) and one that never becomes ready (a model
stuck in ``initialize``) both fail with the log's tail, within the bound, leaving no process.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from demo.errors import LocalTritonError
from demo.local import (
    PYTHON_BACKEND_LOCK_ABORT,
    SHARED_MEMORY,
    STARVED_START,
    TRITONSERVER,
    LocalTriton,
    Ports,
    expand_references,
    known_flags,
    local_arguments,
    triton_container_launch,
    unknown_flags,
)
from demo.triton_install import find_install
from deployer.render import render
from standins.identity_model import STUCK_CODE, write_identity_model
from tests.conftest import CHART_DIR


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--key=$(KEY)", "--key=k1"),
        ("--a=$(KEY),b=$(KEY)", "--a=k1,b=k1"),
        ("--missing=$(MISSING)", "--missing=$(MISSING)"),
        ("--escaped=$$(KEY)", "--escaped=$(KEY)"),
        ("--dollar=$5", "--dollar=$5"),
    ],
)
def test_expand_references_follows_the_kubelet(arg: str, expected: str) -> None:
    assert expand_references(arg, {"KEY": "k1"}) == expected


def _deployment(env: list[dict[str, Any]], args: list[str]) -> dict[str, Any]:
    container = {"name": "triton", "env": env, "args": args}
    return {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [container]}}}}


def test_env_values_may_refer_to_earlier_ones() -> None:
    objects = [
        _deployment(
            [{"name": "A", "value": "one"}, {"name": "B", "value": "$(A)-two"}], ["--x=$(B)"]
        )
    ]
    launch = triton_container_launch(objects)
    assert launch.env == {"A": "one", "B": "one-two"}
    assert launch.args == ["--x=one-two"]


def test_the_rendered_chart_resolves_with_its_own_secret(helm: Path) -> None:
    objects = render(
        helm=helm,
        chart=CHART_DIR,
        release="t",
        namespace="ns",
        values={"modelRepository": "gs://bucket/models"},
    )
    secret = next(o for o in objects if o["kind"] == "Secret" and "admin-key" in o["data"])
    key = base64.b64decode(secret["data"]["admin-key"]).decode()
    launch = triton_container_launch(objects)
    assert launch.env["TRITON_ADMIN_KEY"] == key
    assert not [a for a in launch.args if "$(" in a]
    assert sum(a.endswith(f"={key}") for a in launch.args) == 2  # the HTTP and gRPC flags


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([], "0 Deployments"),
        (
            [
                {
                    "kind": "Deployment",
                    "spec": {"template": {"spec": {"containers": [{"name": "other"}]}}},
                }
            ],
            "no container 'triton'",
        ),
        (
            [
                _deployment(
                    [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    [],
                )
            ],
            "reads Secret s key k",
        ),
    ],
)
def test_a_rendering_that_cannot_run_locally_is_refused(
    objects: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(LocalTritonError, match=message):
        triton_container_launch(objects)


def test_local_arguments_replace_only_what_is_the_pods() -> None:
    chart_args = [
        "--model-repository=gs://bucket/models",
        "--model-control-mode=none",
        "--disable-auto-complete-config",
        "--allow-gpu-metrics=true",
        "--http-port=9000",
        "--exit-timeout-secs=30",
    ]
    args = local_arguments(
        chart_args, model_repository="/tmp/models", ports=Ports(http=1, grpc=2, metrics=3)
    )
    assert "--model-repository=/tmp/models" in args
    assert {"--http-port=1", "--grpc-port=2", "--metrics-port=3"} <= set(args)
    assert "--allow-gpu-metrics=false" in args
    assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1"} <= set(args)
    kept = {"--model-control-mode=none", "--disable-auto-complete-config", "--exit-timeout-secs=30"}
    assert kept <= set(args)
    assert not {"--model-repository=gs://bucket/models", "--http-port=9000"} & set(args)


def test_known_flags_are_read_from_the_servers_help() -> None:
    known = known_flags(find_install())
    # Flags the chart writes and Triton 2.51 has, next to one only later releases have.
    assert {"--model-repository", "--http-restricted-api", "--exit-timeout-secs"} <= known
    assert "--http-max-input-size" not in known, (
        "the local Triton knows --http-max-input-size now: the runner passes the chart's limit "
        "on; update this test and the list below"
    )


def test_the_charts_default_arguments_the_local_triton_lacks(helm: Path) -> None:
    objects = render(
        helm=helm,
        chart=CHART_DIR,
        release="t",
        namespace="ns",
        values={"modelRepository": "gs://bucket/models"},
    )
    args = triton_container_launch(objects).args
    assert unknown_flags(args, known_flags(find_install())) == ["--http-max-input-size=1048576"]


def test_local_arguments_leave_out_flags_the_server_lacks() -> None:
    chart_args = ["--exit-timeout-secs=30", "--http-max-input-size=1048576"]
    ports = Ports(http=1, grpc=2, metrics=3)
    known = {"--exit-timeout-secs", "--model-repository"}
    args = local_arguments(chart_args, model_repository="/m", ports=ports, known=known)
    assert "--exit-timeout-secs=30" in args
    assert "--http-max-input-size=1048576" not in args
    assert "--http-max-input-size=1048576" in local_arguments(
        chart_args, model_repository="/m", ports=ports
    )


@pytest.mark.slow
def test_a_server_given_a_newer_flag_starts_without_it_and_says_so(tmp_path: Path) -> None:
    server = LocalTriton(
        model_repository=str(write_identity_model(tmp_path / "models")),
        workdir=tmp_path / "work",
        chart_args=["--http-max-input-size=1048576", "--exit-timeout-secs=5"],
        ready_timeout_s=60,
    )
    with server:
        assert server.is_ready()
    first_line = server.log_path.read_text().splitlines()[0]
    assert first_line.startswith("local runner: left out --http-max-input-size=1048576:")


@pytest.mark.slow
def test_a_local_server_answers_and_stops(tmp_path: Path) -> None:
    server = LocalTriton(
        model_repository=str(write_identity_model(tmp_path / "models")),
        workdir=tmp_path / "work",
        chart_args=["--model-control-mode=none", "--exit-timeout-secs=5"],
        ready_timeout_s=60,
    )
    with server:
        body = json.dumps(
            {
                "inputs": [
                    {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                ]
            }
        ).encode()
        request = urllib.request.Request(f"{server.http_url}/v2/models/identity/infer", data=body)
        with urllib.request.urlopen(request, timeout=10) as response:
            outputs = json.loads(response.read())["outputs"]
        pid = server.pid
    assert pid is not None
    assert outputs[0]["data"] == [1.0, 2.0, 3.0, 4.0]
    assert server.pid is None
    assert not server.is_ready()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.slow
def test_a_killed_server_leaves_no_shared_memory(tmp_path: Path) -> None:
    server = LocalTriton(
        model_repository=str(write_identity_model(tmp_path / "models")),
        workdir=tmp_path / "work",
        ready_timeout_s=60,
    )
    server.start()
    regions = sorted(SHARED_MEMORY.glob(f"{server.shared_memory_prefix}*"))
    assert regions  # its stub's, named with this server's prefix
    assert server.stop(timeout_s=0) == -9  # killed: Triton removes nothing itself
    assert [region for region in regions if region.exists()] == []


@pytest.mark.slow
def test_a_server_that_exits_at_start_is_reported(tmp_path: Path) -> None:
    server = LocalTriton(
        model_repository=str(tmp_path / "no-such-repository"),
        workdir=tmp_path / "work",
        ready_timeout_s=60,
    )
    with pytest.raises(LocalTritonError, match="exited with code") as error:
        server.start()
    assert "no-such-repository" in str(error.value)  # the log's tail names the cause


@pytest.mark.slow
def test_a_server_that_never_becomes_ready_is_stopped_within_the_bound(tmp_path: Path) -> None:
    server = LocalTriton(
        model_repository=str(write_identity_model(tmp_path / "models", code=STUCK_CODE)),
        workdir=tmp_path / "work",
        chart_args=["--exit-timeout-secs=1"],
        ready_timeout_s=4,
    )
    started = time.monotonic()
    with pytest.raises(LocalTritonError, match="not ready within 4 s"):
        server.start()
    assert time.monotonic() - started < 60
    assert server.pid is None  # stopped, its process group killed


STARVED_STARTS = {
    # Triton 2.51's python backend: a lock gives way and the server aborts.
    "lock abort": (
        f"echo \"terminate called after throwing an instance of '{PYTHON_BACKEND_LOCK_ABORT}'\"\n"
        "kill -ABRT $$\n",
        -6,
    ),
    # A stub misses its health check in the warm-up; the table and shutdown lines push the
    # error out of the log's last lines.
    "unhealthy stub": (
        "echo \"E1207 17:28:23.154500 1 model_lifecycle.cc:642] failed to load 'identity' version"
        " 1: Invalid argument: failed to run warmup sample 'batch_1': Stub process"
        " 'identity_0_0' is not healthy.; \"\n"
        "seq 1 40\n"
        "echo 'error: creating server: Internal - failed to load all models'\n"
        "exit 1\n",
        1,
    ),
}
"""How a starved start fails (``demo.local.STARVED_START``): the launcher's shell lines, and the
exit code the server reports."""


def _failing_launcher(tmp_path: Path, failures: int, failure: str) -> Path:
    """A wrapper for the server's command: its first ``failures`` starts run the shell lines
    ``failure`` (and end there), later ones the real server. Each start appends a line to
    ``starts``."""
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(
        "#!/bin/sh\n"
        f"echo start >> {tmp_path}/starts\n"
        f'if [ "$(wc -l < {tmp_path}/starts)" -le {failures} ]; then\n'
        f"{failure}"
        "fi\n"
        'exec "$@"\n'
    )
    launcher.chmod(0o755)
    return launcher


def _server_behind(tmp_path: Path, *, failures: int, failure: str) -> LocalTriton:
    """An identity-model server whose first ``failures`` starts fail (``_failing_launcher``)."""
    return LocalTriton(
        model_repository=str(write_identity_model(tmp_path / "models")),
        workdir=tmp_path / "work",
        container_command=(str(_failing_launcher(tmp_path, failures, failure)), TRITONSERVER),
        ready_timeout_s=60,
    )


def _starts(tmp_path: Path) -> int:
    return (tmp_path / "starts").read_text().count("start")


@pytest.mark.slow
@pytest.mark.parametrize("kind", STARVED_STARTS)
def test_a_start_its_starved_python_backend_fails_is_made_once_more(
    tmp_path: Path, kind: str
) -> None:
    server = _server_behind(tmp_path, failures=1, failure=STARVED_STARTS[kind][0])
    with server:
        assert server.is_ready()
    assert _starts(tmp_path) == 2
    assert STARVED_START.search(server.aborted_log_path.read_text())
    assert not STARVED_START.search(server.log_path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("kind", STARVED_STARTS)
def test_a_second_starved_start_is_reported_and_nothing_is_left_running(
    tmp_path: Path, kind: str
) -> None:
    failure, exit_code = STARVED_STARTS[kind]
    server = _server_behind(tmp_path, failures=2, failure=failure)
    with pytest.raises(LocalTritonError, match=f"exited with code {exit_code} ") as error:
        server.start()
    assert "failed to load all models" in str(error.value) or PYTHON_BACKEND_LOCK_ABORT in str(
        error.value
    )
    assert _starts(tmp_path) == 2
    assert server.pid is None


def test_a_start_that_fails_otherwise_is_not_made_again(tmp_path: Path) -> None:
    failure = "echo 'error: creating server: Internal - failed to load all models'\nexit 1\n"
    server = _server_behind(tmp_path, failures=1, failure=failure)
    with pytest.raises(LocalTritonError, match="exited with code 1 "):
        server.start()
    assert _starts(tmp_path) == 1
    assert not server.aborted_log_path.exists()
