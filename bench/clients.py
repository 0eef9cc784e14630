"""Load generators side by side against one local Triton: ``make bench`` (the Locust part).

    python -m bench.clients [--seconds 10] [--rounds 5] [--concurrency 8] [--out build/bench]

The clients, one after the other, each at its maximum rate with the same concurrency, in
several rounds (the machine's load changes over time; each client's median round is reported,
and the locustfile against the original style round by round, with the median of those ratios):

- ``locustfile``: this project's locustfile (prebuilt binary requests on keep-alive connections,
  every answer checked), one Locust process;
- ``original``: the original sample's style (HttpUser, JSON body, no check);
- ``tritonclient``: a plain loop of ``tritonclient.http`` calls in threads (binary, checked);
- ``locustfile, 1 worker`` and ``2 workers``: the locustfile in Locust's distributed mode on
  loopback (``locust_cluster``), as the load-test chart runs it: requests per worker CPU-second
  (the workers' CPU summed; the master is not counted).

The server runs a light model with the BERT contract's I/O (``light_model.py``) so the clients,
not the network, are measured. On a machine with two cores or more, the server is pinned to core
0 and each client to core 1. For each client: requests per second, and requests per client
CPU-second, both over the steady part of the run (the first two seconds of load and the last one
are left out, so start-up and shutdown do not count; ``client_figures``). The tritonclient loop
is a process of its own (``tritonclient_loop``), measured like the others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bench.client_figures import (
    TAIL_S,
    WARMUP_S,
    ClientResult,
    CpuSampler,
    locust_per_second,
    measure,
    median_run,
    per_second_of,
    ratios,
    table,
)
from common.processes import finish
from samples.bert.client import encode_json, make_batches
from samples.bert.contract import DEFAULT_MODEL_NAME, SEQUENCE_LENGTH
from standins.light_repository import write_light_model
from standins.locust_cluster import LocalLocustCluster

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
LOCUSTFILE: Final = ROOT / "locust" / "locustfile-bert-large.py"
BODY_FILE_VARIABLE: Final = "BENCH_ORIGINAL_BODY"
"""The environment variable that gives ``original_style.py`` its request body."""
SERVER_CORE: Final = 0
CLIENT_CORE: Final = 1


def _pin(core: int) -> Callable[[], None] | None:
    if len(os.sched_getaffinity(0)) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def run_client(
    command: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> tuple[int, CpuSampler, str]:
    """Run one client process pinned to the client core; its exit code, CPU samples, output."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_pin(CLIENT_CORE),
    )
    sampler = CpuSampler(process.pid)
    sampler.start()
    output, killed = finish(process, timeout_s=timeout_s)
    if killed:
        raise RuntimeError(f"{command[0]} ran past {timeout_s:.0f} s:\n{(output or '')[-2000:]}")
    sampler.join(timeout=2)
    return process.returncode, sampler, output or ""


def bench_locust(
    *,
    name: str,
    locustfile: Path,
    host: str,
    seconds: int,
    users: int,
    out: Path,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ClientResult:
    prefix = out / f"{name}-stats"
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(locustfile), "--headless", "--only-summary", "-H", host,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
        "--json-file", str(prefix), *extra,
    ]  # fmt: skip
    code, sampler, output = run_client(command, timeout_s=seconds + 60, env=env)
    stats_file = prefix.with_name(prefix.name + ".json")
    if not stats_file.exists():
        raise RuntimeError(f"{name}: locust exited {code} without statistics:\n{output[-2000:]}")
    per_second, failures = locust_per_second(stats_file)
    return measure(client=name, per_second=per_second, failures=failures, cpu_at=sampler.at_second)


def bench_distributed(
    *, workers: int, host: str, seconds: int, users: int, out: Path
) -> ClientResult:
    """The locustfile as a master and ``workers`` worker processes on loopback, the workers
    pinned to the client core; requests per second and per second of the workers' CPU."""
    name = f"locustfile, {workers} worker{'s' if workers > 1 else ''}"
    master_args = [
        "--headless", "--only-summary", "-u", str(users), "-r", str(users),
        "-t", f"{seconds}s", "--load-shape", "users", "--user-qps", "0",
    ]  # fmt: skip
    with LocalLocustCluster(
        locustfile=LOCUSTFILE,
        host=host,
        workers=workers,
        out=out / f"distributed-{workers}",
        master_args=master_args,
        cwd=ROOT,
        worker_preexec=_pin(CLIENT_CORE),
    ) as cluster:
        samplers = [CpuSampler(worker.pid) for worker in cluster.worker_processes]
        for sampler in samplers:
            sampler.start()
        run = cluster.wait(timeout_s=seconds + 90)
    for sampler in samplers:
        sampler.join(timeout=2)
    if not run.stats:
        raise RuntimeError(f"{name}: the master wrote no statistics:\n{run.master_output[-2000:]}")
    per_second, failures = per_second_of(run.stats)
    sampled = set.intersection(*(set(s.at_second) for s in samplers))
    cpu_at = {second: sum(s.at_second[second] for s in samplers) for second in sampled}
    return measure(client=name, per_second=per_second, failures=failures, cpu_at=cpu_at)


def bench_tritonclient(*, url: str, seconds: int, threads: int, out: Path) -> ClientResult:
    result_file = out / "tritonclient.json"
    command = [
        sys.executable, "-m", "bench.tritonclient_loop", "--url", url,
        "--seconds", str(seconds), "--threads", str(threads), "--out", str(result_file),
    ]  # fmt: skip
    code, sampler, output = run_client(command, timeout_s=seconds + 60)
    if code != 0:
        raise RuntimeError(f"the tritonclient loop exited {code}:\n{output[-2000:]}")
    data = json.loads(result_file.read_text())
    per_second = {int(k): int(v) for k, v in data["per_second"].items()}
    return measure(
        client="tritonclient",
        per_second=per_second,
        failures=data["failures"],
        cpu_at=sampler.at_second,
    )


def run_bench(
    *, seconds: int, concurrency: int, rounds: int, out: Path
) -> list[dict[str, ClientResult]]:
    """``rounds`` rounds of the clients, one after the other; the results by round."""
    from demo.local import LocalTriton

    out.mkdir(parents=True, exist_ok=True)
    repository = out / "models"
    shutil.rmtree(repository, ignore_errors=True)
    write_light_model(repository, name=DEFAULT_MODEL_NAME)
    # The original style's one request, built here so its locustfile imports nothing of ours.
    (batch,) = make_batches(count=1, batch_size=1, seq_len=SEQUENCE_LENGTH)
    original_body = out / "original-body.json"
    original_body.write_bytes(encode_json(batch).body)
    pin = _pin(SERVER_CORE)
    if pin is not None:
        pin()  # the server and its stubs inherit core 0; clients move to core 1
    results: list[dict[str, ClientResult]] = []
    with LocalTriton(model_repository=str(repository), workdir=out / "triton") as server:
        print(f"==> tritonserver ready at {server.http_url} (light model)", flush=True)
        runs: list[tuple[str, Callable[[], ClientResult]]] = [
            ("locustfile", lambda: bench_locust(
                name="locustfile", locustfile=LOCUSTFILE,
                host=server.http_url, seconds=seconds, users=concurrency, out=out,
                extra=["--load-shape", "users", "--user-qps", "0"],
            )),
            ("original", lambda: bench_locust(
                name="original", locustfile=HERE / "original_style.py",
                host=server.http_url, seconds=seconds, users=concurrency, out=out,
                env={BODY_FILE_VARIABLE: str(original_body)},
            )),
            ("tritonclient", lambda: bench_tritonclient(
                url=server.http_url, seconds=seconds, threads=concurrency, out=out,
            )),
            *[(f"locustfile, {n} worker{'s' if n > 1 else ''}", lambda n=n: bench_distributed(
                workers=n, host=server.http_url, seconds=seconds, users=concurrency, out=out,
            )) for n in (1, 2)],
        ]  # fmt: skip
        for round_number in range(1, rounds + 1):
            results.append({})
            for name, run in runs:
                print(
                    f"==> round {round_number}/{rounds}, {name}: {concurrency} concurrent, "
                    f"{seconds} s",
                    flush=True,
                )
                result = run()
                print(
                    f"    {result.rate:,.0f} req/s, {result.per_cpu_s:,.0f} req per client CPU-s "
                    f"({result.requests} requests, {result.cpu_s:.2f} CPU-s in "
                    f"{result.window_s} s)",
                    flush=True,
                )
                results[-1][name] = result
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="each client's run (10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the clients (5)")
    parser.add_argument("--concurrency", type=int, default=8, help="users or threads (8)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    if args.seconds < WARMUP_S + TAIL_S + 3 or args.concurrency < 1 or args.rounds < 1:
        parser.error(
            f"--seconds must be at least {WARMUP_S + TAIL_S + 3}, --concurrency and --rounds 1+"
        )
    rounds = run_bench(
        seconds=args.seconds, concurrency=args.concurrency, rounds=args.rounds, out=args.out
    )
    medians = [median_run([r[name] for r in rounds]) for name in rounds[0]]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_round = ratios(rounds, "original")
    per_round = ", ".join(f"{x:.2f}x" for x in by_round)
    report = [
        f"Load generators, {stamp}, {os.cpu_count()} cores, {len(rounds)} rounds of "
        f"{args.seconds} s (each client's median round):",
        "",
        *table(medians),
        "",
        f"locustfile vs original style, requests per client CPU-second, by round: {per_round}; "
        f"median {statistics.median(by_round):.2f}x",
    ]
    print("\n".join(report))
    (args.out / "load-generators.md").write_text("\n".join(report) + "\n")
    (args.out / "load-generators.json").write_text(
        json.dumps(
            [
                {
                    name: {**asdict(r), "rate": r.rate, "per_cpu_s": r.per_cpu_s}
                    for name, r in rnd.items()
                }
                for rnd in rounds
            ],
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
