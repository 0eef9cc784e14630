"""The chart's restricted-API arguments on the real Triton server (2.51 from nvidia-pytriton).

The container's arguments and environment come from the rendered chart; the key comes from the
rendered Secret and is substituted into `$(TRITON_ADMIN_KEY)` the way the kubelet does
(`demo.local.triton_container_launch`, the local runner's own resolution). One
server (a tiny python-backend identity model) serves the whole module.

Cases: inference works without the header over HTTP and
gRPC; the model-repository API (`POST /v2/repository/index`, gRPC RepositoryIndex) and
statistics are refused without the header or with a wrong key, and accepted with the key (on
gRPC under Triton's `triton-grpc-protocol-` prefix, and refused under the bare name);
health stays open; the metrics the autoscaler and the dashboard read are exported by Triton.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from demo.local import LocalTriton, triton_container_launch
from standins.identity_model import write_identity_model
from tests.chart.helpers import only, render_chart
from tests.conftest import HELM4, ROOT

pytestmark = pytest.mark.slow

HEADER = "triton-admin-key"


@pytest.fixture(scope="module")
def chart_key_and_args() -> tuple[str, list[str]]:
    """The key from the rendered Secret, and Triton's arguments as the kubelet passes them."""
    manifests = render_chart(HELM4)
    (encoded,) = only(manifests, "Secret", "-admin-key")["data"].values()
    key = base64.b64decode(encoded).decode()
    launch = triton_container_launch(manifests)
    assert launch.env == {"TRITON_ADMIN_KEY": key}
    return key, launch.args


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory, chart_key_and_args: tuple[str, list[str]]
) -> Iterator[LocalTriton]:
    root = tmp_path_factory.mktemp("triton")
    write_identity_model(root / "repository")
    _, args = chart_key_and_args
    server = LocalTriton(
        model_repository=str(root / "repository"),
        workdir=root / "work",
        chart_args=args,
        ready_timeout_s=90,
    )
    with server:
        yield server


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


INFER_BODY = json.dumps(
    {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
).encode()


def test_args_carry_the_key_only_after_expansion(
    chart_key_and_args: tuple[str, list[str]],
) -> None:
    key, args = chart_key_and_args
    apis = "model-repository,shared-memory,statistics,trace,logging,model-config"
    assert f"--http-restricted-api={apis}:{HEADER}={key}" in args
    assert f"--grpc-restricted-protocol={apis}:{HEADER}={key}" in args


def test_http_inference_needs_no_header(triton: LocalTriton) -> None:
    url = f"{triton.http_url}/v2/models/identity/infer"
    status, body = http(url, method="POST", body=INFER_BODY)
    assert status == 200, body
    assert json.loads(body)["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]
    assert http(f"{triton.http_url}/v2/health/ready")[0] == 200


@pytest.mark.parametrize("path", ["/v2/repository/index", "/v2/models/stats"])
def test_admin_apis_need_the_key(
    triton: LocalTriton, chart_key_and_args: tuple[str, list[str]], path: str
) -> None:
    key, _ = chart_key_and_args
    method, body = ("POST", b"{}") if "repository" in path else ("GET", None)
    url = triton.http_url + path
    refused, message = http(url, method=method, body=body)
    assert refused == 403, message
    assert b"restricted" in message
    assert http(url, method=method, body=body, headers={HEADER: "wrong"})[0] == 403
    accepted, answer = http(url, method=method, body=body, headers={HEADER: key})
    assert accepted == 200, answer
    assert b"identity" in answer


def test_grpc_inference_is_open_and_repository_restricted(
    triton: LocalTriton, chart_key_and_args: tuple[str, list[str]]
) -> None:
    key, _ = chart_key_and_args
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    try:
        tensor = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
        result = client.infer("identity", [tensor], client_timeout=10)
        assert result.as_numpy("OUTPUT0").tolist() == [[0.0, 1.0, 2.0, 3.0]]
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index(client_timeout=10)
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index(headers={HEADER: key}, client_timeout=10)
        # Triton's gRPC endpoint prefixes the header name (SECURITY.md says so).
        grpc_header = f"triton-grpc-protocol-{HEADER}"
        index = client.get_model_repository_index(
            headers={grpc_header: key}, as_json=True, client_timeout=10
        )
        assert [m["name"] for m in index["models"]] == ["identity"]
    finally:
        client.close()


def test_exports_the_metrics_the_chart_scales_and_plots_on(triton: LocalTriton) -> None:
    status, body = http(triton.metrics_url)
    assert status == 200
    exported = set(re.findall(r"^(nv_[a-z_]+)", body.decode(), flags=re.MULTILINE))
    chart = ROOT / "chart"
    read = {
        name
        for path in (chart / "templates" / "hpa.yaml", chart / "dashboards" / "triton.json")
        for name in re.findall(r"nv_[a-z_]+", path.read_text())
    }
    gpu_only = {n for n in read if n.startswith("nv_gpu_")}  # this server has no GPU
    assert "nv_inference_queue_duration_us" in read
    assert read - gpu_only <= exported, read - gpu_only - exported
