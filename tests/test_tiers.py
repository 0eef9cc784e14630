"""The tier table (tests/tiers.py) and the runner's reading of pytest's output.

Cases: a test takes the highest tier among its fixtures and its module, render without either; a
rate-measuring test is named by its id or a prefix of it; an entry of the tables that names no test
is reported; each lane starts once the lanes it waits for have ended; the runner counts a JUnit
report's outcomes (errors as failures, skips with their reasons) and reads pytest's progress
characters; a lane writes bytecode even where its caller does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.__main__ import ROOT, Lane, progress, read_junit
from tests.tiers import (
    NICENESS,
    ONE_WORKER_MODULE_LANES,
    ONE_WORKER_MODULES,
    RATE_MEASURING,
    XDIST_WORKERS,
    measures_rates,
    stale_tier_entries,
    startable,
    tier_of,
    xdist_scope,
)


def test_the_highest_need_decides_the_tier() -> None:
    assert tier_of("tests/chart/test_x.py", frozenset({"helm", "tmp_path"})) == "render"
    assert tier_of("tests/chart/test_x.py", frozenset({"triton"})) == "process"
    assert tier_of("tests/chart/test_x.py", frozenset({"triton", "control_plane"})) == "cluster"
    assert tier_of("tests/chart/test_x.py", frozenset({"control_plane", "real_node"})) == "artifact"
    assert tier_of("tests/demo/test_demo.py", frozenset()) == "process"
    assert tier_of("tests/standins/test_apiserver.py", frozenset({"emulator"})) == "cluster"


def test_rate_measuring_tests_are_named_by_id_or_prefix() -> None:
    parametrized = "tests/locust/test_locustfile.py::test_constant_rate_is_reached_without_failures"
    assert measures_rates(f"{parametrized}[json-options1]")
    assert not measures_rates("tests/locust/test_locustfile.py::test_wrong_outputs_are_failures")


def test_an_entry_naming_no_test_is_reported() -> None:
    everything = {"tests/demo/test_demo.py::test_short_demo_run"}
    stale = stale_tier_entries(everything)
    assert "tests/demo/test_soak.py" in stale
    assert "tests/demo/test_soak.py::test_short_soak_run" in stale
    assert "tests/demo/test_demo.py" not in stale
    assert "tests/demo/test_demo.py::test_short_demo_run" not in stale


def test_lanes_start_once_those_they_wait_for_have_ended() -> None:
    every = {"render", "cluster", "artifact", "process", "rates"}
    waiting = ["render", "cluster", "artifact", "process", "rates"]
    assert startable(waiting, set(), every) == ["render", "cluster", "artifact"]
    # The local servers start once the cluster tests are done, the renders or not.
    assert startable(["process", "rates"], {"render"}, every) == []
    assert startable(["process", "rates"], {"cluster"}, every) == ["process"]
    # The rate-measuring tests wait for every other lane: never beside a control plane.
    assert startable(["rates"], {"render", "cluster", "process"}, every) == []
    assert startable(["rates"], every - {"rates"}, every) == ["rates"]


def test_the_renders_yield_the_cores(tmp_path: Path) -> None:
    assert NICENESS["render"] > 0 and "process" not in NICENESS
    niceness_of_child = [sys.executable, "-c", "import os; print(os.nice(0))"]
    seen = {}
    for name in ("render", "process"):
        lane = Lane(name, tmp_path)
        lane.command = lambda extra: niceness_of_child  # type: ignore[method-assign]
        lane.start(())
        assert lane.process is not None and lane.process.wait(timeout=30) == 0
        seen[name] = int(lane.log.read_text())
    # Relative to this process, which may itself run in a lowered lane; 19 is the floor.
    assert seen == {"render": min(19, os.nice(0) + NICENESS["render"]), "process": os.nice(0)}


def test_a_lane_writes_bytecode_whatever_its_caller_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("LANE_MARKER", "kept")
    lane = Lane("process", tmp_path)
    child = "import os, sys; print(sys.dont_write_bytecode, os.environ['LANE_MARKER'])"
    lane.command = lambda extra: [sys.executable, "-c", child]  # type: ignore[method-assign]
    lane.start(())
    assert lane.process is not None and lane.process.wait(timeout=30) == 0
    assert lane.log.read_text().split() == ["False", "kept"]


def test_a_lane_not_chosen_holds_nothing_back() -> None:
    assert startable(["process"], set(), {"process"}) == ["process"]
    assert startable(["rates", "process"], set(), {"rates", "process"}) == ["process"]
    assert startable(["gpu"], set(), {"gpu"}) == ["gpu"]


def test_a_junit_report_is_counted(tmp_path: Path) -> None:
    report = tmp_path / "lane.xml"
    report.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="a" name="ok"/>'
        '<testcase classname="a" name="bad"><failure message="x&#10;second line"/></testcase>'
        '<testcase classname="a" name="broken"><error message="y"/></testcase>'
        '<testcase classname="a" name="off"><skipped message="no etcd"/></testcase>'
        '<testcase classname="a" name="off2"><skipped message="no etcd"/></testcase>'
        "</testsuite></testsuites>"
    )
    outcome = read_junit(report)
    assert (outcome.passed, outcome.failed, outcome.skipped) == (1, 2, 2)
    assert outcome.skip_reasons == {"no etcd": 2}
    assert outcome.failures == ["a::bad: x", "a::broken: y"]
    assert outcome.line() == "1 passed, 2 failed, 2 skipped"
    assert read_junit(tmp_path / "absent.xml").line() == "0 passed, 0 failed, 0 skipped"


def test_progress_counts_pytests_result_characters(tmp_path: Path) -> None:
    log = tmp_path / "lane.log"
    assert progress(log) == "starting"
    log.write_text("bringing up nodes...\n")
    assert progress(log) == "collecting"
    log.write_text("..F.s [ 10%]\n..E\n")
    assert progress(log) == "8 done"


def test_a_lane_reports_its_exit_code_and_cpu_time(tmp_path: Path) -> None:
    lane = Lane("render", tmp_path)
    busy = "import sys\nsum(i * i for i in range(3_000_000))\nsys.exit(3)"
    lane.process = subprocess.Popen([sys.executable, "-c", busy])
    lane.started = time.monotonic()
    code = lane.reap()
    while code is None:
        time.sleep(0.05)
        code = lane.reap()
    assert code == 3
    assert lane.reap() == 3, "a reaped lane keeps its code"
    assert 0 < lane.cpu_seconds <= lane.seconds + 1


def test_the_rates_lane_collects_only_the_rate_measuring_modules(tmp_path: Path) -> None:
    lane = Lane("rates", tmp_path)
    modules = [argument for argument in lane.command(()) if argument.startswith("tests/")]
    assert modules == sorted({test_id.split("::")[0] for test_id in RATE_MEASURING})
    assert all((ROOT / module).is_file() for module in modules)
    # Arguments may name other tests (``python -m tests rates tests/demo``): they choose.
    assert lane.command(["tests/demo"])[-1] == "tests/demo"
    assert not set(modules) & set(lane.command(["tests/demo"]))


def test_a_module_with_a_costly_module_fixture_goes_to_one_worker(tmp_path: Path) -> None:
    grouped = sorted(ONE_WORKER_MODULES)[0]
    for module in (grouped, "tests/test_single.py"):
        path = tmp_path / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "import os, pathlib, pytest\n"
            "@pytest.mark.parametrize('n', range(6))\n"
            "def test_records_its_worker(n):\n"
            "    out = pathlib.Path(__file__).with_suffix(f'.{n}')\n"
            "    out.write_text(os.environ['PYTEST_XDIST_WORKER'])\n"
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path,
         "--import-mode=importlib", "-c", os.devnull, "-n", "2", "-p", "tests.xdist_modules",
         "tests"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    def workers(module: str) -> set[str]:
        return {out.read_text() for out in (tmp_path / module).parent.glob("*.[0-9]")}

    assert len(workers(grouped)) == 1
    assert len(workers("tests/test_single.py")) > 1  # the others spread


def test_the_module_groups_are_the_lanes_with_workers_but_the_renders(tmp_path: Path) -> None:
    assert xdist_scope(f"{sorted(ONE_WORKER_MODULES)[0]}::test_a[x]") in ONE_WORKER_MODULES
    assert xdist_scope("tests/test_tiers.py::test_a") == "tests/test_tiers.py::test_a"
    for name in XDIST_WORKERS:
        plugins = Lane(name, tmp_path).command(())
        assert ("tests.xdist_modules" in plugins) == (name in ONE_WORKER_MODULE_LANES)
    assert "render" not in ONE_WORKER_MODULE_LANES
    for module in ONE_WORKER_MODULES:  # each has the module fixture that is why it is there
        assert 'scope="module"' in (ROOT / module).read_text(), module
