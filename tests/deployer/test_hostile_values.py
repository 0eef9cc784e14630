"""Hostile values through the real command line: every one is refused with exit code 2.

The corpus is ``tests/deployer/hostile/`` (``expected.txt`` says what each refusal must name)
plus the cases too large to keep in the repository, written here: files over 1 MiB, 20,000
unknown keys, a 500,000-character key, more values than the loader takes; and Marketplace
values folders (one file per key) with the same kinds of trouble.

Each case runs ``deployer.cli.main(["deploy", "--values", CASE, ...])`` in a worker process
limited to ``ADDRESS_SPACE`` bytes (RLIMIT_AS: an alias bomb or a recursion would die there),
with a kubeconfig pointing at a loopback socket that nobody may connect to. For each case:
exit code 2, the key (or, where no key can be read, the file) named, no traceback, at most
4 KiB on stderr, under 2 s. A few of the worst cases also run as ``python -m deployer`` in a
fresh interpreter, where the 2 s include starting Python. The 2 s are CPU seconds (user and
system) of the deployer's process: the machine running the tests is shared, and its other
work must not count as the deployer's.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CHART_DIR, ROOT
from tests.deployer.conftest import SCHEMA

CORPUS = Path(__file__).resolve().parent / "hostile"
ADDRESS_SPACE = 1024 * 1024 * 1024
"""The worker's address-space limit: Python with the deployer loaded takes about a third."""
MAX_SECONDS = 2.0
WALL_SECONDS = 120
"""Only a guard against a hang: the tests run at a low priority beside other work, so the
limit that speaks of the deployer is ``MAX_SECONDS`` of its CPU time."""
MAX_MESSAGE_BYTES = 4096
MAX_RSS_KIB = 400 * 1024
"""The worker's peak resident memory over the whole corpus."""

BASE = "name: triton\nnamespace: triton\nmodelRepository: gs://bucket/models\n"
BASE_FOLDER = {"name": "triton", "namespace": "triton", "modelRepository": "gs://bucket/models"}


def _corpus_files() -> dict[str, str]:
    """File name → what the refusal must name, from ``expected.txt``."""
    lines = (CORPUS / "expected.txt").read_text().splitlines()
    return dict(line.split("\t") for line in lines if line and not line.startswith("#"))


def _write_file(content: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(content)

    return write


def _write_folder(files: dict[str, bytes | str]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.mkdir()
        for name, content in {**BASE_FOLDER, **files}.items():
            data = content.encode() if isinstance(content, str) else content
            (path / name).write_bytes(data)
        # What a ConfigMap volume holds besides the keys, which the deployer skips.
        (path / "..data").mkdir()

    return write


LOL = (
    "l0: ["
    + ",".join(['"lol"'] * 9)
    + "]\n"
    + "".join(f"l{i}: [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10))
)
LONG_KEY = "k" * 500_000
MIB = 1024 * 1024

GENERATED: dict[str, tuple[Callable[[Path], None], str]] = {
    "over-1mib.yaml": (_write_file((BASE + "# " + "x" * MIB + "\n").encode()), "over-1mib"),
    "model-repository-10mb.yaml": (
        _write_file(BASE.replace("models", "m" * 10_000_000).encode()),
        "model-repository-10mb",
    ),
    "model-repository-900kb.yaml": (
        _write_file(BASE.replace("models", "m" * 900_000).encode()),
        "modelRepository",
    ),
    "unknown-keys-20000.yaml": (
        _write_file((BASE + "".join(f"k{i:05d}: 1\n" for i in range(20_000))).encode()),
        "19,990 more unknown keys",
    ),
    "values-over-limit.yaml": (
        _write_file((BASE + "server.extraArgs: [" + "1," * 60_000 + "1]\n").encode()),
        "server.extraArgs",
    ),
    # YAML allows a plain key of 1,024 characters; `?` introduces a key of any length.
    "key-500k.yaml": (_write_file((BASE + f"? {LONG_KEY}\n: 1\n").encode()), "k" * 80),
    "plain-key-500k.yaml": (_write_file((BASE + f"{LONG_KEY}: 1\n").encode()), "line 4"),
    "name-900k.yaml": (
        _write_file(BASE.replace("name: triton", "name: " + "a" * 900_000, 1).encode()),
        "name",
    ),
    "folder-binary-value": (
        _write_folder({"replicaCount": bytes(range(256))}),
        "replicaCount",
    ),
    "folder-too-many-files": (
        _write_folder({f"k{i:04d}": "1" for i in range(1_001)}),
        "1,00",
    ),
    "folder-too-large": (
        _write_folder({"ingress.host": "a" * 600_000, "ingress.grpc.host": "b" * 600_000}),
        "ingress.host",
    ),
    "folder-alias-bomb": (_write_folder({"server.metricsConfig": LOL}), "server.metricsConfig"),
    "folder-deep": (
        _write_folder({"server.metricsConfig": "{a: " * 3_000 + "1" + "}" * 3_000}),
        "server.metricsConfig.a.a",
    ),
    "folder-kube-system": (_write_folder({"namespace": "kube-system"}), "namespace"),
    "folder-not-utf8": (
        _write_folder({"modelRepository": b"gs://caf\xe9/models"}),
        "modelRepository",
    ),
    "folder-unknown-keys": (
        _write_folder({f"unknown{i:03d}": "1" for i in range(900)}),
        "890 more unknown keys",
    ),
    "folder-duplicate-key": (
        _write_folder({"server.metricsConfig": "{a: '1', a: '2'}"}),
        "server.metricsConfig.a",
    ),
    "folder-dotted-and-nested": (
        _write_folder({"server.logVerbose": "1", "server": "{logVerbose: 2}"}),
        "server.logVerbose",
    ),
    "folder-python-tag": (
        _write_folder({"replicaCount": "!!python/object/apply:os.system [id]"}),
        "replicaCount",
    ),
    "folder-bad-image": (_write_folder({"image.registry": "Bad Registry!"}), "image.registry"),
}

CASES = sorted(_corpus_files()) + sorted(GENERATED)


@dataclass
class Listener:
    """A loopback socket standing in for the API server: it accepts nothing, so any
    connection the deployer made is still waiting in its backlog afterwards."""

    sock: socket.socket

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    def connections(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.sock.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1


@pytest.fixture(scope="module")
def api_server() -> Iterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    try:
        yield Listener(sock)
    finally:
        sock.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, api_server: Listener) -> Path:
    directory = tmp_path_factory.mktemp("hostile")
    (directory / "kubeconfig").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": api_server.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return directory


def _case_path(name: str, workdir: Path) -> Path:
    if name in GENERATED:
        path = workdir / name
        if not path.exists():
            GENERATED[name][0](path)
        return path
    return CORPUS / name


def _expected(name: str) -> str:
    return GENERATED[name][1] if name in GENERATED else _corpus_files()[name]


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _common_args(workdir: Path, helm4: Path) -> list[str]:
    return [
        "--schema",
        str(SCHEMA),
        "--chart",
        str(CHART_DIR),
        "--helm",
        str(helm4),
        "--kubeconfig",
        str(workdir / "kubeconfig"),
    ]


@pytest.fixture(scope="module")
def results(workdir: Path, helm4: Path) -> dict[str, dict[str, Any]]:
    """Every case through ``cli.main`` in one worker under the address-space limit."""
    paths = {str(_case_path(name, workdir)): name for name in CASES}
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.deployer.hostile_worker",
            *_common_args(workdir, helm4),
            *paths,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limit_address_space,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-4000:]
    lines = [json.loads(line) for line in worker.stdout.splitlines()]
    return {paths[line["path"]]: line for line in lines}


def test_the_corpus_is_large_and_every_file_is_listed() -> None:
    listed = set(_corpus_files())
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "expected.txt"}
    assert listed == on_disk
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_value_is_refused_with_its_key(
    name: str, results: dict[str, dict[str, Any]]
) -> None:
    result = results[name]
    message = result["stderr"]
    assert result["escaped"] == "", result["escaped"]
    assert result["code"] == 2, message[:2000]
    assert "Traceback" not in message
    assert _expected(name) in message, message[:2000]
    assert "nothing was sent to the cluster" in message
    assert len(message.encode()) <= MAX_MESSAGE_BYTES, f"{len(message.encode())} bytes"
    assert result["cpu_seconds"] < MAX_SECONDS, f"{result['cpu_seconds']:.2f} s of CPU"


def test_memory_stays_bounded(results: dict[str, dict[str, Any]]) -> None:
    peak = max(r["max_rss_kib"] for r in results.values())
    assert peak < MAX_RSS_KIB, f"peak RSS {peak / 1024:.0f} MiB"


def test_nothing_reaches_the_api_server(
    results: dict[str, dict[str, Any]], api_server: Listener
) -> None:
    assert len(results) == len(CASES)
    assert api_server.connections() == 0


def test_the_listener_would_have_seen_a_connection(api_server: Listener) -> None:
    """The check above can fail: a client that connects is seen."""
    with socket.create_connection(("127.0.0.1", api_server.sock.getsockname()[1]), timeout=2):
        pass
    deadline = time.monotonic() + 2
    seen = 0
    while not seen and time.monotonic() < deadline:
        seen = api_server.connections()
    assert seen == 1


WORST = [
    "alias-bomb.yaml",
    "deep-flow-mapping.yaml",
    "binary-garbage.yaml",
    "model-repository-10mb.yaml",
    "unknown-keys-20000.yaml",
    "folder-alias-bomb",
]


@pytest.mark.parametrize("name", WORST)
def test_the_worst_cases_through_python_m_deployer(
    name: str, workdir: Path, helm4: Path, api_server: Listener
) -> None:
    path = _case_path(name, workdir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "deploy",
            "--values",
            str(path),
            *_common_args(workdir, helm4),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WALL_SECONDS,
        preexec_fn=_limit_address_space,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert _expected(name) in done.stderr
    assert len(done.stderr.encode()) <= MAX_MESSAGE_BYTES
    assert cpu_seconds < MAX_SECONDS, f"{cpu_seconds:.2f} s of CPU including Python's start"
    assert api_server.connections() == 0
