"""Fixtures for the load-test tests: a real local Triton serving a BERT-contract model, a
real edge in front of it (nginx, standins/ingress.py) with the test's own certificates,
and a helper that runs the real Locust on the real locustfile, headless and bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import processes
from demo.local import LocalTriton
from samples.bert.build_settings import BuildSettings
from samples.bert.contract import LOGITS_PER_TOKEN
from samples.bert.repository import write_repository
from standins.ingress import NginxIngress, Pki, make_pki, missing_nginx
from standins.light_repository import write_light_model
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
LOCUST_DIR = ROOT / "locust"
LOCUSTFILE = LOCUST_DIR / "locustfile-bert-large.py"
WRONG_SHAPE_MODEL = "bert_wrong_shape"
"""Served next to the sample: answers 200 with logits of shape [batch, 128, 3]."""
STALLED_MODELS = {"http": "bert_stalled_http", "grpc": "bert_stalled_grpc"}
"""Served next to the sample: right answers, each after STALL_S (one per protocol, so neither
test waits behind the other's backlog)."""
STALL_S = 2.0


def write_model_repository(repository: Path) -> Path:
    """The sample's tiny python variant under the default name, the mis-shaped model and the
    stalled ones."""
    write_repository(
        BuildSettings(
            variant="python", repository=repository, size="tiny", device="cpu", cpu_threads=1
        ),
        progress=lambda _: None,
    )
    write_light_model(repository, name=WRONG_SHAPE_MODEL, logits_per_token=LOGITS_PER_TOKEN + 1)
    for name in STALLED_MODELS.values():
        write_light_model(repository, name=name, delay_s=STALL_S)
    return repository


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def triton(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """One server for the session, always stopped."""
    with LocalTriton(
        model_repository=str(model_repository),
        workdir=tmp_path_factory.mktemp("triton"),
        ready_timeout_s=90,
    ) as server:
        yield server
        server.stop(timeout_s=0)  # the session's tests are done: no drain or unload to wait for


@dataclass(frozen=True)
class LocustRun:
    """What a finished Locust process left behind."""

    returncode: int
    output: str
    """stdout and stderr together."""
    stats: list[dict[str, object]]
    """Locust's ``--json-file`` entries (empty if it wrote none)."""


def locust_command(host: str, json_prefix: Path, *args: str) -> list[str]:
    """The real Locust CLI on the real locustfile, headless, loopback only."""
    return [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-H",
        host,
        "--json-file",
        str(json_prefix),
        "--ready-timeout",
        "20",
        *args,
    ]


def finish(process: subprocess.Popen[str], json_prefix: Path, timeout_s: float) -> LocustRun:
    """Wait (bounded) for a Locust process and collect what it wrote."""
    output, killed = processes.finish(process, timeout_s=timeout_s)
    if killed:
        pytest.fail(f"locust did not finish within {timeout_s} s; its output:\n{output}")
    stats_file = json_prefix.with_name(json_prefix.name + ".json")
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else []
    return LocustRun(returncode=process.returncode, output=output or "", stats=stats)


def start_locust(host: str, json_prefix: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        locust_command(host, json_prefix, *args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_locust(host: str, json_prefix: Path, *args: str, timeout_s: float = 60) -> LocustRun:
    return finish(start_locust(host, json_prefix, *args), json_prefix, timeout_s)


def inference_counts(triton: LocalTriton, model: str) -> tuple[int, int]:
    """(successes, failures) the server counts for ``model``, by its statistics API."""
    url = f"{triton.http_url}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        stats = json.load(response)["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]), int(stats["fail"]["count"])


HOST = "triton.example.com"
"""The host the edge routes, as an Istio or Gateway API ingress routes ``ingress.host``."""
GRPC_HOST = "grpc.triton.example.com"
"""A second routed host (``ingress.grpc.host`` of the Gateway API mode)."""
UNCOVERED_HOST = "uncovered.example.com"
"""Routed too, but not among the certificate's names."""


def require_nginx() -> None:
    """Skip the calling test where nginx is absent (fail it in CI): the edge needs it."""
    reason = missing_nginx()
    if reason:
        unavailable(reason)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), [HOST, GRPC_HOST])


@pytest.fixture(scope="session")
def ingress(
    triton: LocalTriton, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxIngress]:
    """nginx in front of the session's Triton (standins/ingress.py), always stopped."""
    require_nginx()
    with NginxIngress(
        triton=triton,
        workdir=tmp_path_factory.mktemp("nginx"),
        hosts=[HOST, GRPC_HOST, UNCOVERED_HOST],
        pki=pki,
    ) as edge:
        yield edge
