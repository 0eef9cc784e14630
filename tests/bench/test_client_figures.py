"""The load-generator benchmark's arithmetic (its real runs are `make bench`, not tests).

Cases: the steady window leaves out the first two seconds of load and the last one, and shrinks
to seconds where CPU was sampled; a run too short for a window is refused; requests and CPU are
taken over the same whole seconds; Locust's per-second counts are merged across request names;
the median round is picked by requests per CPU-second; ratios are taken round by round; the
table puts each client against the locustfile.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.client_figures import (
    ClientResult,
    locust_per_second,
    measure,
    median_run,
    ratios,
    steady_window,
    table,
)

PER_SECOND = {100: 50, 101: 90, 102: 100, 103: 100, 104: 100, 105: 100, 106: 40}
CPU_AT = {second: 0.5 * (second - 100) for second in range(100, 108)}


def test_window_leaves_out_warmup_and_tail() -> None:
    assert steady_window(PER_SECOND, CPU_AT) == (102, 106)


def test_window_needs_cpu_samples_at_its_ends() -> None:
    cpu_at = {s: v for s, v in CPU_AT.items() if s not in (102, 106)}
    assert steady_window(PER_SECOND, cpu_at) == (103, 105)


def test_too_short_a_run_is_refused() -> None:
    assert steady_window({100: 5, 101: 5}, CPU_AT) is None
    with pytest.raises(RuntimeError, match="too short"):
        measure(client="x", per_second={100: 5}, failures=0, cpu_at=CPU_AT)


def test_requests_and_cpu_over_the_same_seconds() -> None:
    result = measure(client="x", per_second=PER_SECOND, failures=3, cpu_at=CPU_AT)
    assert result == ClientResult(client="x", requests=400, failures=3, window_s=4, cpu_s=2.0)
    assert (result.rate, result.per_cpu_s) == (100.0, 200.0)


def test_locust_counts_are_merged(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    stats.write_text(
        json.dumps(
            [
                {"num_failures": 1, "num_reqs_per_sec": {"100": 3, "101": 4}},
                {"num_failures": 2, "num_reqs_per_sec": {"101": 5}},
            ]
        )
    )
    assert locust_per_second(stats) == ({100: 3, 101: 9}, 3)


def test_table_compares_with_the_locustfile() -> None:
    lines = table(
        [
            ClientResult("locustfile", 3000, 0, 1, 1.0),
            ClientResult("original", 800, 0, 1, 1.0),
        ]
    )
    assert lines[2] == "| locustfile | 3,000 | 3,000 | 1.00x | 0 |"
    assert lines[3] == "| original | 800 | 800 | 3.75x | 0 |"


def test_median_round_and_ratios_by_round() -> None:
    rounds = [
        {
            "locustfile": ClientResult("locustfile", 3000, 0, 1, 1.0),
            "original": ClientResult("original", 1000, 0, 1, 1.0),
        },
        {
            "locustfile": ClientResult("locustfile", 2000, 0, 1, 1.0),
            "original": ClientResult("original", 500, 0, 1, 1.0),
        },
        {
            "locustfile": ClientResult("locustfile", 2500, 0, 1, 1.0),
            "original": ClientResult("original", 1000, 0, 1, 1.0),
        },
    ]
    assert median_run([r["locustfile"] for r in rounds]).requests == 2500
    assert median_run([r["original"] for r in rounds[:2]]).requests == 500
    assert ratios(rounds, "original") == [3.0, 4.0, 2.5]
