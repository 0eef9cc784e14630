"""The locustfile in Locust's distributed mode on loopback (a master bound to 127.0.0.1 and two
worker processes), against the real local Triton, as the load-test chart runs it on a cluster.

Cases: the master's requests and failures equal the sums the workers say they reported, and
Triton's own count of the requests it answered; the `summary json` line carries the master's
figures; wrong answers are failures on the workers and in the master's summary (exit code 1,
reason printed); a worker killed mid-run is reported missing by the master, its users move to
the other worker, and the run goes on at its rate to the end, which comes on time.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from demo.local import LocalTriton
from loadtest.load_summary import summarize
from standins.locust_cluster import ClusterRun, LocalLocustCluster
from tests.locust.conftest import LOCUSTFILE, ROOT, WRONG_SHAPE_MODEL, inference_counts

pytestmark = pytest.mark.slow

STOP_TIMEOUT_S = 1
"""Time for the requests in flight at the end (milliseconds each here) to finish; each worker
also waits this long after its stop before it reports ready again."""
END_SLACK_S = 5
"""From the run's end to the master's exit, past --stop-timeout: the workers' last reports and
the quit. A master waiting for a dead worker to come back would take 10 s more."""

WORKER_REPORT = re.compile(r"worker (\S+) reported (\d+) requests, (\d+) failures")


def constant_rate(qps: int, seconds: int, *extra: str) -> list[str]:
    return [
        "--headless", "--only-summary", "--enable-rebalancing",
        "--load-shape", "constant", "--target-qps", str(qps), "--user-qps", "10",
        "--ready-timeout", "20", "--stop-timeout", str(STOP_TIMEOUT_S), "-t", f"{seconds}s",
        *extra,
    ]  # fmt: skip


def run_cluster(triton: LocalTriton, out: Path, master_args: list[str]) -> ClusterRun:
    with LocalLocustCluster(
        locustfile=LOCUSTFILE,
        host=triton.http_url,
        workers=2,
        out=out,
        master_args=master_args,
        cwd=ROOT,
    ) as cluster:
        return cluster.wait(timeout_s=90)


def worker_reports(run: ClusterRun) -> list[tuple[int, int]]:
    """(requests, failures) each worker says it reported to the master."""
    found = [WORKER_REPORT.search(output) for output in run.worker_outputs]
    assert all(found), "\n".join(run.worker_outputs)
    return [(int(m.group(2)), int(m.group(3))) for m in found if m]


def answered_by_triton(triton: LocalTriton, model: str) -> int:
    """Inferences the server counts for ``model`` (successes and failures)."""
    return sum(inference_counts(triton, model))


def summary_json(output: str) -> dict[str, float]:
    match = re.search(r"summary json (\{.*\})", output)
    assert match, output
    parsed: dict[str, float] = json.loads(match.group(1))
    return parsed


def test_master_counts_are_the_workers_sums(triton: LocalTriton, tmp_path: Path) -> None:
    before = answered_by_triton(triton, "bert")
    run = run_cluster(triton, tmp_path, constant_rate(60, 5))
    served = answered_by_triton(triton, "bert") - before
    summary = summarize(run.stats)
    reports = worker_reports(run)
    assert run.returncode == 0, run.master_output
    assert run.worker_returncodes == [0, 0]
    assert all(requests > 0 for requests, _ in reports), reports
    # --stop-timeout lets requests in flight finish, so Triton answered exactly these.
    assert summary.requests == sum(requests for requests, _ in reports) == served
    assert summary.failures == sum(failures for _, failures in reports) == 0
    line = summary_json(run.master_output)
    assert line["requests"] == summary.requests
    assert set(line) == {"requests", "failures", "qps", "p50_ms", "p95_ms", "p99_ms", "insecure"}
    assert line["insecure"] is False


def test_failures_reach_the_master(triton: LocalTriton, tmp_path: Path) -> None:
    run = run_cluster(triton, tmp_path, constant_rate(20, 3, "--model-name", WRONG_SHAPE_MODEL))
    summary = summarize(run.stats)
    reports = worker_reports(run)
    assert run.returncode == 1, run.master_output
    assert 0 < summary.failures == summary.requests
    assert summary.failures == sum(failures for _, failures in reports)
    assert "cls_squad_logits has shape [1, 128, 3], expected [1, 128, 2]" in run.master_output


def test_a_dead_worker_is_reported_and_the_run_goes_on(triton: LocalTriton, tmp_path: Path) -> None:
    qps, seconds = 40, 12
    with LocalLocustCluster(
        locustfile=LOCUSTFILE,
        host=triton.http_url,
        workers=2,
        out=tmp_path,
        master_args=constant_rate(qps, seconds),
        cwd=ROOT,
    ) as cluster:
        # Both workers sending (each says so when its users start), then a moment of load.
        deadline = time.monotonic() + 30
        while not all("is ready; sending" in cluster.log(f"worker-{i}") for i in (1, 2)):
            assert time.monotonic() < deadline, cluster.log("master")
            time.sleep(0.2)
        sending_at = time.monotonic()
        time.sleep(2)
        cluster.kill_worker(0)
        killed_at = time.time()
        run = cluster.wait(timeout_s=60)
        lasted = time.monotonic() - sending_at
    assert run.returncode == 0, run.master_output
    # The run ends on time: the master does not wait for the dead worker to report back.
    assert lasted < seconds + STOP_TIMEOUT_S + END_SLACK_S, f"{lasted:.1f} s"
    assert "failed to send heartbeat, setting state to missing" in run.master_output
    assert run.worker_returncodes == [None, 0]
    survivor = WORKER_REPORT.search(run.worker_outputs[1])
    assert survivor and int(survivor.group(2)) > 0, run.worker_outputs[1]
    # After the heartbeat timeout (3 s) and the rebalance, the survivor carries the whole rate.
    per_second: dict[int, int] = {}
    for entry in run.stats:
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(float(second))] = per_second.get(int(float(second)), 0) + count
    late = [count for second, count in per_second.items() if second >= killed_at + 5]
    assert late, per_second
    assert sum(late[:-1]) / max(1, len(late) - 1) >= 0.7 * qps, per_second
