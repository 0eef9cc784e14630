"""The generate endpoints on the real Triton server (2.51 from nvidia-pytriton), started with the
chart's arguments (restricted APIs on), through the paths the chart's Istio route admits.

A small decoupled python-backend model, ``streamer``, answers a prompt with ``max_tokens``
responses, one every 0.4 s, then the final flag.

Cases: every path requested here is one the default Istio VirtualService sends to Triton's HTTP
port (and the streamed one to its streaming route); ``/generate`` answers one JSON object with
the model's output, with no admin header; ``/generate_stream`` answers server-sent events
(``text/event-stream``), one ``data:`` event per response in order, each arriving when the
model sends it rather than all at the end; ``/generate`` of a request that yields several
responses is Triton's error pointing at ``generate_stream``.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.local import LocalTriton, triton_container_launch
from tests.chart.helpers import only, render_chart
from tests.chart.routes import istio_route
from tests.conftest import HELM4

pytestmark = pytest.mark.slow

HELM = HELM4
MODEL = "streamer"
DELAY_S = 0.4

CONFIG = """name: "streamer"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "text_input", data_type: TYPE_STRING, dims: [ 1 ] },
  { name: "max_tokens", data_type: TYPE_INT32, dims: [ 1 ] }
]
output [ { name: "text_output", data_type: TYPE_STRING, dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""

CODE = """import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy()[0]
            count = int(pb_utils.get_input_tensor_by_name(request, "max_tokens").as_numpy()[0])
            for index in range(count):
                if index:
                    time.sleep(%(delay)s)
                token = np.array([f"{prompt.decode()}-{index}".encode()], dtype=object)
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("text_output", token)]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """The real Triton serving ``streamer`` with the chart's default arguments."""
    root = tmp_path_factory.mktemp("generate")
    model = root / "repository" / MODEL
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(CODE % {"delay": DELAY_S})
    launch = triton_container_launch(render_chart(HELM))
    with LocalTriton(
        model_repository=str(root / "repository"),
        workdir=root / "work",
        chart_args=launch.args,
        env=launch.env,
        ready_timeout_s=90,
    ) as server:
        yield server


def post_lines(
    server: LocalTriton, path: str, body: dict[str, Any]
) -> tuple[int, str, list[tuple[float, bytes]]]:
    """POST ``body`` as JSON; (status, content type, [(seconds since the request, line)]), each
    line read as soon as it arrives."""
    connection = http.client.HTTPConnection(server.host, server.ports.http, timeout=30)
    try:
        started = time.monotonic()
        connection.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        lines = []
        while line := response.readline():
            lines.append((time.monotonic() - started, line.rstrip(b"\n")))
        return response.status, response.getheader("Content-Type", ""), lines
    finally:
        connection.close()


def test_the_edge_admits_these_paths(helm: Path) -> None:
    values = {
        "modelRepository": "gs://bucket/models",
        "ingress": {"mode": "istio", "host": "t.example.com"},
    }
    vs = only(render_chart(helm, values), "VirtualService")
    plain = istio_route(vs, "POST", f"/v2/models/{MODEL}/generate")
    streamed = istio_route(vs, "POST", f"/v2/models/{MODEL}/generate_stream")
    assert plain is not None and plain["name"] == "http-inference"
    assert streamed is not None and streamed["name"] == "http-stream"


def test_generate_answers_one_object(triton: LocalTriton) -> None:
    status, content_type, lines = post_lines(
        triton, f"/v2/models/{MODEL}/generate", {"text_input": "hello", "max_tokens": 1}
    )
    assert (status, content_type) == (200, "application/json")
    (line,) = [text for _, text in lines if text]
    assert json.loads(line) == {
        "model_name": MODEL,
        "model_version": "1",
        "text_output": "hello-0",
    }


def test_generate_stream_sends_each_response_as_it_comes(triton: LocalTriton) -> None:
    tokens = 4
    status, content_type, lines = post_lines(
        triton, f"/v2/models/{MODEL}/generate_stream", {"text_input": "hi", "max_tokens": tokens}
    )
    assert status == 200
    assert content_type.startswith("text/event-stream")
    events = [(at, text) for at, text in lines if text]
    assert all(text.startswith(b"data: ") for _, text in events)
    outputs = [json.loads(text.removeprefix(b"data: "))["text_output"] for _, text in events]
    assert outputs == [f"hi-{index}" for index in range(tokens)]
    # Not buffered until the end: the first event arrives long before the last.
    arrivals = [at for at, _ in events]
    assert arrivals[-1] - arrivals[0] >= (tokens - 1) * DELAY_S * 0.75


def test_generate_of_several_responses_points_at_the_stream(triton: LocalTriton) -> None:
    _, _, lines = post_lines(
        triton, f"/v2/models/{MODEL}/generate", {"text_input": "hi", "max_tokens": 2}
    )
    (line,) = [text for _, text in lines if text]
    assert "use generate stream" in json.loads(line)["error"]
