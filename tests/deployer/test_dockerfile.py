"""Dockerfile.deployer can build and run what it says (no image is built here).

Cases:
- every COPY source from the build context exists and its ignore file lets it through, while
  the local virtual environments stay out of the context;
- the entrypoint is the console script pyproject.toml installs, it resolves to a callable,
  and the default command and the Marketplace shims' commands parse;
- ``python -m deployer --help`` runs;
- helm is pinned by version and sha256, fetched from get.helm.sh, and is the version the
  tests use; the image runs as a non-root user; chart and schema land under /data.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from common.helm_pins import helm_pin
from deployer.cli import build_parser
from tests.conftest import HELM_BINARIES, ROOT

DOCKERFILE = ROOT / "Dockerfile.deployer"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def last(name: str) -> str:
    return [rest for word, rest in instructions() if word == name][-1]


def test_every_copied_path_exists() -> None:
    copies = [rest for word, rest in instructions() if word == "COPY"]
    local = [c for c in copies if not c.startswith("--from")]
    assert local, "the image copies the chart and the deployer"
    for copy in local:
        *sources, _destination = shlex.split(copy)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the build context"


def test_chart_and_schema_land_under_data() -> None:
    copies = {tuple(shlex.split(rest)) for word, rest in instructions() if word == "COPY"}
    assert ("chart", "/data/chart") in copies
    assert ("schema.yaml", "/data/schema.yaml") in copies


def test_the_entrypoint_resolves() -> None:
    entrypoint = json.loads(last("ENTRYPOINT"))
    command = json.loads(last("CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts
    module_name, _, function = scripts[entrypoint[0]].partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    build_parser().parse_args([*entrypoint[1:], *command])


@pytest.mark.parametrize("shim", ["deploy.sh", "deploy_with_tests.sh"])
def test_the_marketplace_shims_run_the_deployer(shim: str) -> None:
    text = (ROOT / "deployer" / "marketplace" / shim).read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
    program, *arguments = shlex.split(exec_line)[1:]
    assert program == json.loads(last("ENTRYPOINT"))[0]
    build_parser().parse_args([a for a in arguments if a != "$@"])
    assert (ROOT / "deployer" / "marketplace" / shim).stat().st_mode & 0o111, "executable"


def test_python_m_deployer_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deployer", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for command in ("deploy", "render", "status", "delete", "verify"):
        assert command in done.stdout


def test_helm_is_pinned_and_is_the_tested_version() -> None:
    args = dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["HELM_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", args["HELM_SHA256"])
    run = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" in run
    assert "sha256sum --check" in run
    # The image's helm is the one the tests use: its one pin, scripts/helm-pins.toml.
    pin = helm_pin("helm4")
    assert args["HELM_VERSION"] == pin["version"]
    assert args["HELM_SHA256"] == pin["tarball_sha256"]
    _, tested = HELM_BINARIES["helm4"]
    assert tested.parent.name == f"helm-{pin['version']}"


def test_the_image_runs_as_a_non_root_user() -> None:
    user = last("USER").split(":")[0]
    assert user not in ("root", "0")


def test_the_build_context_holds_only_what_is_copied() -> None:
    ignore = (ROOT / "Dockerfile.deployer.dockerignore").read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "everything is excluded unless let through"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copies = [rest for word, rest in instructions() if word == "COPY" and "--from" not in rest]
    for copy in copies:
        *sources, _ = shlex.split(copy)
        for source in sources:
            top = source.rstrip("/").split("/")[0]
            assert top in allowed, f"COPY {source} is excluded by the ignore file"
    assert not allowed & {".venv", ".venv-checkov", ".tools", "build"}
