"""The pinned tools the Makefile installs are the versions the project is tested with: each
helm binary is the release its pin (scripts/helm-pins.toml) names; uv installs from the sources
pip is configured with (scripts/uv_sources.py)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from common.helm_pins import helm_pin
from scripts.uv_sources import pip_settings, uv_arguments

ROOT = Path(__file__).resolve().parent.parent


def test_helm_binaries_are_the_pinned_releases(helm: Path) -> None:
    version = subprocess.run(
        [str(helm), "version", "--short"], check=True, capture_output=True, text=True
    ).stdout
    pinned = tuple(helm_pin(name)["version"] for name in ("helm3", "helm4"))
    assert version.startswith(pinned), version


PIP_LISTING = """\
:env:.find-links='/from/env'
:env:.default-timeout='180'
install.index-url='https://install.example/simple'
global.index-url='https://global.example/simple'
global.extra-index-url='file:///mirror/a https://b.example/simple'
global.find-links='/from/config'
global.constraint='/etc/caps.txt'
global.cert='/etc/ssl/certs/ca-certificates.crt'
"""


def test_pips_variables_win_over_its_files_and_install_over_global() -> None:
    assert pip_settings(PIP_LISTING) == {
        "find-links": "/from/env",
        "index-url": "https://install.example/simple",
        "extra-index-url": "file:///mirror/a https://b.example/simple",
        "constraint": "/etc/caps.txt",
    }


def test_each_source_is_its_own_flag_and_missing_local_ones_are_left_out() -> None:
    here = {Path("/from/env"), Path("/etc/caps.txt")}  # /mirror/a does not exist
    assert uv_arguments(pip_settings(PIP_LISTING), exists=here.__contains__) == [
        "--index-strategy", "unsafe-best-match",
        "--index-url", "https://install.example/simple",
        "--extra-index-url", "https://b.example/simple",
        "--find-links", "/from/env",
        "--constraint", "/etc/caps.txt",
    ]  # fmt: skip


def script_arguments(environment: dict[str, str]) -> list[str]:
    printed = subprocess.run(
        [sys.executable, "-m", "scripts.uv_sources"],
        cwd=ROOT, env=environment, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return shlex.split(printed)


def test_the_script_reads_pips_own_configuration(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels with a space"
    wheels.mkdir()
    environment = {
        "PATH": os.environ["PATH"],
        "PIP_CONFIG_FILE": os.devnull,  # no file: only these variables
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_FIND_LINKS": f"{tmp_path / 'gone'}",
    }
    assert script_arguments(environment) == [
        "--index-strategy", "unsafe-best-match", "--index-url", "https://mirror.example/simple"
    ]  # fmt: skip
    environment["PIP_FIND_LINKS"] = wheels.as_uri()
    assert script_arguments(environment)[-2:] == ["--find-links", wheels.as_uri()]
