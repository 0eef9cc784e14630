"""Warm-up holds readiness: the real local Triton, started with the chart's arguments, reports
the pod's readiness path ready only after every ``model_warmup`` sample has run.

Cases: a python model whose ``execute`` is slow and logs each call, with warm-up samples for
batch sizes 1 and 4: while a warm-up call runs, the chart's readiness probe does not get "ready"
(with `--model-control-mode=none` Triton opens its ports only once every model is loaded and
warm, so the kubelet's startup probe keeps waiting, within its budget); the first "ready" comes
after the last warm-up call ended; both sizes ran, with
the batch they name; an inference after that is served. The BERT sample's served config carries
the warm-up of its writer (sizes 1 and the largest batch on a CPU).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.local import LocalTriton, triton_container_launch
from deployer.render import render
from samples.bert import contract
from tests.conftest import CHART_DIR, HELM4

NAME = "slow_warmup"
WARMUP_SECONDS = 1.5

CONFIG = """name: "slow_warmup"
backend: "python"
max_batch_size: 4
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
parameters { key: "call_log", value: { string_value: "%(log)s" } }
model_warmup [
  { name: "batch_1", batch_size: 1,
    inputs { key: "INPUT0", value: { data_type: TYPE_FP32, dims: [ 4 ], zero_data: true } } },
  { name: "batch_4", batch_size: 4,
    inputs { key: "INPUT0", value: { data_type: TYPE_FP32, dims: [ 4 ], zero_data: true } } }
]
"""

CODE = """import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.log = config["parameters"]["call_log"]["string_value"]

    def execute(self, requests):
        batch = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        started = time.time()
        time.sleep(%(seconds)s)
        with open(self.log, "a") as log:
            log.write(json.dumps({"start": started, "end": time.time(),
                                  "rows": sum(len(b) for b in batch)}) + "\\n")
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", b)]) for b in batch]
"""


@dataclass(frozen=True)
class Probe:
    """One look at the server while it starts."""

    at: float
    ready: bool


def _status(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _write_model(repository: Path, call_log: Path) -> None:
    model = repository / NAME
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG % {"log": call_log})
    (model / "1" / "model.py").write_text(CODE % {"seconds": WARMUP_SECONDS})


@pytest.mark.slow
def test_ready_only_after_warmup(tmp_path: Path) -> None:
    objects = render(
        helm=HELM4,
        chart=CHART_DIR,
        release="t",
        namespace="ns",
        values={"modelRepository": "gs://bucket/models"},
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    readiness_path = container["readinessProbe"]["httpGet"]["path"]
    launch = triton_container_launch(objects)

    call_log = tmp_path / "calls.jsonl"
    _write_model(tmp_path / "models", call_log)
    server = LocalTriton(
        model_repository=str(tmp_path / "models"),
        workdir=tmp_path / "triton",
        chart_args=launch.args,
        env=launch.env,
        ready_timeout_s=90,
    )
    failures: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    probes: list[Probe] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not failures:
            probe = Probe(at=time.time(), ready=_status(server.http_url + readiness_path))
            probes.append(probe)
            if probe.ready:
                break
            time.sleep(0.05)
        starter.join(90)
        assert not failures, failures
        assert probes and probes[-1].ready, f"not ready in 90 s:\n{server.log_tail()}"

        calls = [json.loads(line) for line in call_log.read_text().splitlines()]
        assert sorted(call["rows"] for call in calls) == [1, 4]
        first_ready = next(p.at for p in probes if p.ready)
        assert first_ready >= max(call["end"] for call in calls)
        during_warmup = [p for p in probes if any(c["start"] <= p.at <= c["end"] for c in calls)]
        assert during_warmup, "no probe landed while a warm-up call ran"
        assert not any(p.ready for p in during_warmup)

        request = {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            ]
        }
        post = urllib.request.Request(
            f"{server.http_url}/v2/models/{NAME}/infer",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["outputs"][0]["data"] == [1, 2, 3, 4]
    finally:
        starter.join(90)
        server.stop()


def test_the_sample_config_is_served_with_its_warmup(local_triton: LocalTriton) -> None:
    url = f"{local_triton.http_url}/v2/models/{contract.DEFAULT_MODEL_NAME}/config"
    with urllib.request.urlopen(url, timeout=10) as response:
        config = json.loads(response.read())
    sizes = [warmup["batch_size"] for warmup in config["model_warmup"]]
    assert sizes == [1, config["max_batch_size"]]  # a CPU model: 1 and the largest batch
    for warmup in config["model_warmup"]:
        assert set(warmup["inputs"]) == {spec.name for spec in contract.INPUTS}
        assert all(value["zero_data"] for value in warmup["inputs"].values())
