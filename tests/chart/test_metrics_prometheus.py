"""The chart's scaling and dashboard metrics on the real Triton, scraped by a real Prometheus.

One local Triton (2.51 from nvidia-pytriton, arguments from the rendered chart) serves a model
whose single instance takes 1.5 s a request, so requests queue; Debian's `prometheus` scrapes
its metrics port every second, adding the `namespace`, `pod` and `job` (the PodMonitoring's
name) labels that Managed Prometheus adds in the cluster (Debian's package, which `make
debian-packages` installs; without it the tests skip with the reason, and fail where CI runs).

Cases: the PromQL of the chart's KEDA ScaledObject (engine keda) returns this release's queue
time (rate() of the counter) and pending requests, and nothing for another release's or
namespace's; `nv_inference_pending_request_count` counts requests waiting to start execution,
not the one executing (four requests on one instance read 3 at most); every query of the Grafana
dashboard and the HPA's two Triton signals return data from Prometheus (GPU panels excepted on
this CPU machine); the queue-load panel reads what its unit says, µs queued per second.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from demo.local import LocalTriton, Ports, triton_container_launch
from standins.identity_model import CONFIG, write_identity_model
from tests.chart.helpers import only, render_chart
from tests.conftest import CHART_DIR, HELM4, unavailable

pytestmark = pytest.mark.slow

EXECUTE_S = 1.5
"""How long the model's only instance takes per request: long enough that the others queue."""

SLOW_CODE = f"""import time

import triton_python_backend_utils as pb_utils


def read(request):
    return pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()


class TritonPythonModel:
    def execute(self, requests):
        time.sleep({EXECUTE_S})
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", read(r))]
            )
            for r in requests
        ]
"""

NAMESPACE, POD = "serving", "triton-0"
RELEASE = "triton"
KEDA_VALUES: dict[str, Any] = {
    "modelRepository": "gs://bucket/models",
    "metrics": {"podMonitoring": {"enabled": True}},
    "autoscaling": {"enabled": True, "engine": "keda", "keda": {"projectId": "my-project"}},
}
JOB = only(render_chart(HELM4, KEDA_VALUES, release=RELEASE, namespace=NAMESPACE), "PodMonitoring")[
    "metadata"
]["name"]
"""Managed Prometheus labels each series with the PodMonitoring's name as ``job``: so does this
Prometheus, for the chart's PodMonitoring of release ``RELEASE``."""
INFER_BODY = json.dumps(
    {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
).encode()


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    assert "dynamic_batching" not in CONFIG  # one request per execution, so the rest wait
    root = tmp_path_factory.mktemp("triton-metrics")
    write_identity_model(root / "repository", code=SLOW_CODE)
    launch = triton_container_launch(render_chart(HELM4))
    server = LocalTriton(
        model_repository=str(root / "repository"),
        workdir=root / "work",
        chart_args=launch.args,
        ready_timeout_s=90,
    )
    with server:
        yield server


def infer_concurrently(triton: LocalTriton, count: int) -> list[threading.Thread]:
    """Start ``count`` inference requests at once, each in its own thread."""

    def one() -> None:
        request = urllib.request.Request(
            f"{triton.http_url}/v2/models/identity/infer", data=INFER_BODY, method="POST"
        )
        with urllib.request.urlopen(request, timeout=count * EXECUTE_S + 30) as response:
            assert response.status == 200

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def pending_count(triton: LocalTriton) -> float:
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as response:
        text = response.read().decode()
    match = re.search(
        r'^nv_inference_pending_request_count\{model="identity"[^}]*\} (\S+)$', text, re.M
    )
    assert match, "Triton exports no nv_inference_pending_request_count for the model"
    return float(match.group(1))


def test_pending_count_leaves_out_the_executing_request(triton: LocalTriton) -> None:
    threads = infer_concurrently(triton, 4)
    seen = []
    deadline = time.monotonic() + 4 * EXECUTE_S + 10
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        seen.append(pending_count(triton))
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "the requests did not finish"
    # One request executes on the only instance; the other three wait to start execution.
    assert max(seen) == 3, seen
    assert pending_count(triton) == 0


def _prometheus_binary() -> Path:
    """Debian's prometheus, which ``make debian-packages`` installs."""
    found = shutil.which("prometheus")
    if not found:
        unavailable("no prometheus on PATH: run `make debian-packages` (Debian's prometheus)")
    return Path(found)


@pytest.fixture(scope="module")
def prometheus(triton: LocalTriton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus on loopback scraping ``triton`` every second; yields its URL."""
    binary = _prometheus_binary()
    root = tmp_path_factory.mktemp("prometheus")
    port = Ports.free().http
    target = triton.metrics_url.removeprefix("http://").removesuffix("/metrics")
    (root / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "static_configs": [
                            {"targets": [target], "labels": {"namespace": NAMESPACE, "pod": POD}}
                        ],
                    }
                ],
            }
        )
    )
    url = f"http://127.0.0.1:{port}"
    with (root / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = f"{url}/-/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as answer:
                if answer.status == 200:
                    break
            assert process.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("prometheus was not ready within 60 s")
        # Targets reach the scrape loop a few seconds after start: wait for the first scrape,
        # so that the load below is seen from its beginning.
        while not query(Scraped(url, time.time()), f'up{{job="{JOB}"}} == 1'):
            assert time.monotonic() < deadline + 30, "prometheus never scraped Triton"
            time.sleep(0.5)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass(frozen=True)
class Scraped:
    """A Prometheus and the moment its queries are evaluated at."""

    url: str
    at: float


def query(prometheus: Scraped, promql: str) -> list[dict[str, object]]:
    """The instant vector ``promql`` evaluates to at ``prometheus.at``."""
    parameters = {"query": promql, "time": f"{prometheus.at:.3f}"}
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode(parameters)
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


def grafana_query(expr: str) -> str:
    """A dashboard query with Grafana's variables filled as the dashboard's viewer would."""
    return (
        expr.replace("$namespace", NAMESPACE)
        .replace("$pod", ".*")
        .replace("$__rate_interval", "20s")
    )


@pytest.fixture(scope="module")
def scraped_under_load(triton: LocalTriton, prometheus: str) -> Scraped:
    """Prometheus after it scraped Triton while three requests queued and ran, queried at a
    moment 3 s after the last request, so every test reads the same window."""
    threads = infer_concurrently(triton, 3)
    for thread in threads:
        thread.join(timeout=3 * EXECUTE_S + 30)
    time.sleep(3)  # a few more scrapes after the last request
    return Scraped(prometheus, time.time())


DASHBOARD = json.loads((CHART_DIR / "dashboards" / "triton.json").read_text())
QUERIES = [
    pytest.param(target["expr"], id=panel["title"])
    for panel in DASHBOARD["panels"]
    for target in panel.get("targets", [])
    if "nv_gpu_" not in target["expr"]  # GPU metrics need a GPU
]


@pytest.mark.parametrize("expr", QUERIES)
def test_dashboard_query_returns_data(scraped_under_load: Scraped, expr: str) -> None:
    samples = query(scraped_under_load, grafana_query(expr))
    assert samples, f"no data for {grafana_query(expr)}"


@pytest.mark.parametrize(
    "promql",
    [
        # What the adapter reads for the HPA: the counter as a per-second rate, the gauge as is.
        f'rate(nv_inference_queue_duration_us{{namespace="{NAMESPACE}"}}[20s])',
        f'nv_inference_pending_request_count{{namespace="{NAMESPACE}"}}',
    ],
)
def test_hpa_signals_return_data(scraped_under_load: Scraped, promql: str) -> None:
    assert query(scraped_under_load, promql)


def test_queue_load_panel_is_microseconds_queued_per_second(scraped_under_load: Scraped) -> None:
    (panel,) = [p for p in DASHBOARD["panels"] if "queueTime" in p["title"]]
    (sample,) = query(scraped_under_load, grafana_query(panel["targets"][0]["expr"]))
    load = float(sample["value"][1])  # type: ignore[index]
    # Three requests of 1.5 s on one instance wait 0 + 1.5 + 3 s = 4.5 s in all; spread over
    # the 20 s window that is about 225,000 µs/s, a quarter of a request waiting on average.
    assert 0 < load <= 4.5e6 / 20 * 1.5, load


@pytest.mark.parametrize("metric", ["queueTime", "pendingRequests"])
def test_keda_query_reads_this_release_only(scraped_under_load: Scraped, metric: str) -> None:
    """The query KEDA would send to Managed Prometheus, run against this Prometheus, whose
    series carry Managed Prometheus's `namespace` and `job` labels."""

    def trigger_query(release: str, namespace: str) -> str:
        values = {**KEDA_VALUES, "autoscaling": {**KEDA_VALUES["autoscaling"], "metric": metric}}
        manifests = render_chart(HELM4, values, release=release, namespace=namespace)
        (trigger,) = only(manifests, "ScaledObject")["spec"]["triggers"]
        text: str = trigger["metadata"]["query"]
        return text

    (sample,) = query(scraped_under_load, trigger_query(RELEASE, NAMESPACE))
    value = float(sample["value"][1])  # type: ignore[index]
    # Three requests queued 0 + 1.5 + 3 s in the last minute: a rate above 0. The pending
    # count is read 3 s after the last request: 0, but a series of this release.
    assert value > 0 if metric == "queueTime" else value == 0
    assert query(scraped_under_load, trigger_query("other", NAMESPACE)) == []
    assert query(scraped_under_load, trigger_query(RELEASE, "elsewhere")) == []
