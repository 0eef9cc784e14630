"""The restricted-API key survives upgrades: the chart looks its Secret up in the cluster.

Helm renders with `--dry-run=server` against kmock's Kubernetes API emulator on loopback (real
discovery and object store over HTTP), the way `helm upgrade` sees a live cluster.

Cases: with the Secret present, the chart keeps its value; with it absent, a new random key is
drawn (and differs between renders). Helm 3 only: Helm 4 maps every rendered object through
the cluster's discovery, which kmock 0.8 does not serve in the form Helm 4 reads ("no matches
for kind Secret in version v1"); the template's lookup is the same for both.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import kmock
import pytest
import yaml

from tests.conftest import CHART_DIR, HELM3

NAMESPACE = "serving"
SECRET = "triton-triton-inference-server-admin-key"


class EmulatedApi:
    """kmock's Kubernetes emulator on a loopback port, served from a background thread."""

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the kmock Kubernetes emulator did not start within 30 s")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        emulator = kmock.KubernetesEmulator()
        with warnings.catch_warnings():
            # kmock reads its bundled discovery data with a deprecated importlib call.
            warnings.simplefilter("ignore", DeprecationWarning)
            emulator.resources.load_bundled()
        self._stop = asyncio.Event()
        async with emulator, kmock.Server(emulator) as http:
            self.url = f"http://{http.host}:{http.port}"
            self._ready.set()
            await self._stop.wait()

    def create(self, manifest: dict[str, object]) -> None:
        """Create one namespaced core/v1 object through the HTTP API."""
        plural = f"{str(manifest['kind']).lower()}s"
        request = urllib.request.Request(
            f"{self.url}/api/v1/namespaces/{NAMESPACE}/{plural}",
            data=json.dumps(manifest).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatedApi, Path]]:
    """The emulator and a kubeconfig pointing at it."""
    server = EmulatedApi()
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulated", "cluster": {"server": server.url}}],
                "users": [{"name": "tests", "user": {}}],
                "contexts": [
                    {"name": "tests", "context": {"cluster": "emulated", "user": "tests"}}
                ],
                "current-context": "tests",
            }
        )
    )
    try:
        yield server, kubeconfig
    finally:
        server.stop()


def rendered_key(helm: Path, kubeconfig: Path, release: str) -> str:
    """The key in the Secret the chart renders for ``release`` against the emulated cluster."""
    result = subprocess.run(
        [
            str(helm),
            "template",
            release,
            str(CHART_DIR),
            "-n",
            NAMESPACE,
            "--dry-run=server",
            "--disable-openapi-validation",
            "--kubeconfig",
            str(kubeconfig),
            "--set",
            "modelRepository=gs://bucket/models",
            "--show-only",
            "templates/secret.yaml",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (encoded,) = yaml.safe_load(result.stdout)["data"].values()
    return base64.b64decode(encoded).decode()


def test_existing_key_is_kept(api: tuple[EmulatedApi, Path]) -> None:
    server, kubeconfig = api
    kept = "kept-across-upgrades"
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {"admin-key": base64.b64encode(kept.encode()).decode()},
        }
    )
    assert rendered_key(HELM3, kubeconfig, release="triton") == kept


def test_new_key_without_a_secret(api: tuple[EmulatedApi, Path]) -> None:
    _, kubeconfig = api
    first, second = (rendered_key(HELM3, kubeconfig, release="fresh") for _ in range(2))
    assert first != second
    assert len(first) == 48
