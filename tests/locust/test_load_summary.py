"""The end-of-run summary computed from Locust's statistics entries.

Cases: entries of several request names are merged (counts, histogram, time span); percentiles
follow the histogram; the rate is requests over first-request-to-last-response; an empty run
gives zeros; a file that is not Locust's JSON list is refused with its path in the message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.load_summary import LoadSummary, summarize, summarize_file


def _entry(
    requests: int, failures: int, times: dict[str, int], start: float, end: float
) -> dict[str, object]:
    return {
        "name": "x",
        "method": "POST",
        "num_requests": requests,
        "num_failures": failures,
        "response_times": times,
        "start_time": start,
        "last_request_timestamp": end,
    }


def test_entries_are_merged() -> None:
    summary = summarize(
        [
            _entry(90, 0, {"2": 50, "3": 40}, start=100.0, end=108.0),
            _entry(10, 2, {"40": 9, "200": 1}, start=101.0, end=110.0),
        ]
    )
    assert summary == LoadSummary(
        requests=100, failures=2, qps=10.0, p50_ms=2.0, p95_ms=40.0, p99_ms=40.0
    )


def test_tail_percentile_reaches_the_slowest() -> None:
    summary = summarize([_entry(100, 0, {"1": 98, "7": 1, "900": 1}, start=0.0, end=1.0)])
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (1.0, 1.0, 7.0)
    assert summarize([_entry(100, 0, {"1": 98, "900": 2}, 0.0, 1.0)]).p99_ms == 900.0


def test_empty_run() -> None:
    assert summarize([]) == LoadSummary(0, 0, 0.0, 0.0, 0.0, 0.0)


def test_lines_show_the_failure_share() -> None:
    lines = LoadSummary(200, 3, 19.96, 2.0, 5.0, 9.0).lines()
    assert lines[1] == "failures  3 (1.50 %)"
    assert lines[2] == "rate      20.0 req/s"


def test_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text(json.dumps([_entry(4, 0, {"5": 4}, 0.0, 2.0)]))
    assert summarize_file(path).qps == 2.0


def test_not_a_stats_file(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"requests": 1}')
    with pytest.raises(ValueError, match=r"other\.json is not a Locust statistics file"):
        summarize_file(path)
