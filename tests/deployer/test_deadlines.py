"""``--timeout`` is the deadline of a whole command, and every API request keeps to it.

The faults here are ones a real API server cannot be made to show on demand, so they run
against the emulator: requests left unanswered (a stalled server), answers that trickle in
and never end, and dropped connections.

Cases:
- a server stalled from the first request (discovery): deploy ends at its deadline with
  exit 1, saying the API server did not answer and what to check, after one request;
- each request waits at most MAX_REQUEST_S, and one that timed out is not sent again;
- a server that answers a byte at a time, never finishing (no read ever times out): each
  request still ends at its limit, and the deploy at its deadline;
- a server that stalls once the Application is applied: deploy still ends at its deadline,
  every object that was not applied listed, and says it could not mark the Application;
- a dropped connection is retried and the deploy succeeds;
- status and delete keep to their deadline too;
- without ``--timeout`` the deadline comes from the rendered chart: the Deployment's
  progressDeadlineSeconds plus room to apply and report (verify: --tester-timeout more for
  each tester pod; delete: the pods' grace period), and each command prints it and where it
  came from; a ``--timeout`` below the progress deadline is noted;
- ``--timeout`` must be a positive number (exit 2 from argparse);
- the Deadline itself: requests capped, none sent once it has passed, the report reserve.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from deployer import actions, deadline, render
from deployer.errors import DeadlinePassed
from standins.emulator.cluster import EmulatedCluster
from standins.emulator.controllers import HEALTHY
from tests.conftest import CHART_DIR
from tests.deployer.conftest import RELEASE, SCHEMA, Run, write_values

SLACK_S = 3.0
"""How far past its deadline a command may end: the last request's teardown, the report, a
busy runner."""


def timed(run: Run, *args: str, **kwargs: Path) -> tuple[float, int, str, str]:
    started = time.monotonic()
    result = run(*args, **kwargs)
    return time.monotonic() - started, result.code, result.out, result.err


def test_a_server_stalled_from_the_first_request_ends_the_deploy_at_its_deadline(
    run: Run, emulator: EmulatedCluster
) -> None:
    emulator.stall()
    elapsed, code, out, err = timed(run, "deploy", "--timeout", "8")
    assert code == 1
    assert 8 <= elapsed <= 8 + SLACK_S, elapsed
    assert f"the Kubernetes API server at {emulator.url} did not answer within" in err
    assert "check that it is up" in err and "Traceback" not in err
    assert "deadline 8 s (--timeout)" in out
    # Discovery was the first request, and a request that timed out is not sent again.
    assert [path for _, path, _ in emulator.requests()] in (["/version"], ["/api"], ["/apis"])


def test_a_request_waits_at_most_the_cap_and_is_not_sent_again(
    run: Run, emulator: EmulatedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadline, "MAX_REQUEST_S", 1.0)
    emulator.stall()
    elapsed, code, _, err = timed(run, "deploy", "--timeout", "60")
    assert code == 1
    assert elapsed <= 1 + SLACK_S, elapsed
    assert "did not answer within 1 s" in err
    assert len(emulator.requests()) == 1


def test_a_trickling_answer_still_ends_the_request_at_its_limit(
    run: Run, emulator: EmulatedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read timeout restarts with every byte: only a limit on the whole request ends this."""
    monkeypatch.setattr(deadline, "MAX_REQUEST_S", 2.0)
    emulator.trickle()
    elapsed, code, _, err = timed(run, "deploy", "--timeout", "60")
    assert code == 1
    assert elapsed <= 2 + SLACK_S, elapsed
    assert f"the Kubernetes API server at {emulator.url} did not answer within 2 s" in err
    assert "Traceback" not in err
    assert len(emulator.requests()) == 1, "a request that timed out is not sent again"


def test_a_trickling_server_ends_the_deploy_at_its_deadline(
    run: Run, emulator: EmulatedCluster
) -> None:
    emulator.trickle()
    elapsed, code, _, err = timed(run, "deploy", "--timeout", "5")
    assert code == 1
    assert 5 <= elapsed <= 5 + SLACK_S, elapsed
    assert "did not answer within" in err and "Traceback" not in err


def test_a_server_stalling_mid_deploy_still_ends_it_at_the_deadline(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster
) -> None:
    emulator.set_controllers(HEALTHY)
    emulator.stall("Service")
    elapsed, code, out, err = timed(run, "deploy", "--timeout", "8", chart=marketplace_chart)
    assert code == 1
    assert 8 <= elapsed <= 8 + SLACK_S, elapsed
    assert f"Service/{RELEASE}: the Kubernetes API server at" in err
    assert "did not answer within" in err
    # What came after the stalled object was not sent, and says so.
    assert f"Deployment/{RELEASE}: the command's deadline of 8 s (--timeout) passed" in err
    assert "could not mark the Application Failed: the command's deadline" in out
    app = emulator.find("Application", RELEASE)
    assert app is not None and app["spec"]["assemblyPhase"] == "Pending"


def test_a_dropped_connection_is_sent_again(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster
) -> None:
    emulator.set_controllers(HEALTHY)
    emulator.drop(2)
    result = run("deploy", "--timeout", "20", chart=marketplace_chart)
    assert result.code == 0, result.err
    first = [path for _, path, _ in emulator.requests()[:3]]
    assert first == [first[0]] * 3, "the same request, sent again after each drop"
    app = emulator.find("Application", RELEASE)
    assert app is not None and app["spec"]["assemblyPhase"] == "Success"


@pytest.mark.parametrize("command", ["status", "delete"])
def test_status_and_delete_keep_to_their_deadline(
    marketplace_chart: Path, run: Run, emulator: EmulatedCluster, command: str
) -> None:
    emulator.stall()
    elapsed, code, _, err = timed(run, command, "--timeout", "5", chart=marketplace_chart)
    assert code == 1
    assert 5 <= elapsed <= 5 + SLACK_S, elapsed
    assert "did not answer within" in err


def _plan(helm4: Path, tmp_path: Path, chart: Path = CHART_DIR, **values: object) -> actions.Plan:
    inputs = actions.Inputs(
        chart=chart,
        schema=SCHEMA,
        values=write_values(tmp_path, **values),
        helm=render.find_helm(str(helm4)),
    )
    return actions.make_plan(inputs)


def test_the_default_deadline_follows_the_charts_progress_deadline(
    helm4: Path, tmp_path: Path
) -> None:
    plan = _plan(helm4, tmp_path)
    (triton,) = [o for o in plan.objects if o["kind"] == "Deployment"]
    progress = triton["spec"]["progressDeadlineSeconds"]
    startup = triton["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert progress >= startup["periodSeconds"] * startup["failureThreshold"]
    rendered = [*plan.objects, *plan.tests]
    deploy_s = deadline.default_timeout_s("deploy", rendered)
    assert deploy_s == progress + deadline.APPLY_AND_REPORT_S
    testers = [o for o in plan.tests if o["kind"] == "Pod"]
    assert testers, "the chart's helm test pod"
    verify_s = deadline.default_timeout_s("verify", rendered, testers_s=300)
    assert verify_s == deploy_s + 300 * len(testers)
    grace = triton["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert deadline.default_timeout_s("delete", rendered) == grace + deadline.APPLY_AND_REPORT_S
    assert deadline.default_timeout_s("status", rendered) == deadline.STATUS_S


@pytest.mark.parametrize(
    ("command", "source"),
    [
        ("deploy", "from the chart's progressDeadlineSeconds"),
        ("verify", "from the chart's progressDeadlineSeconds and --tester-timeout"),
        ("delete", "from the chart's terminationGracePeriodSeconds"),
        ("status", "the default for status"),
    ],
)
def test_without_a_timeout_each_command_prints_the_deadline_it_took(
    run: Run,
    emulator: EmulatedCluster,
    helm4: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    source: str,
) -> None:
    monkeypatch.delenv("TESTER_TIMEOUT", raising=False)  # verify's --tester-timeout: 300 s
    plan = _plan(helm4, tmp_path)
    testers_s = 300.0 if command == "verify" else 0.0
    rendered = [*plan.objects, *plan.tests]
    expected = deadline.default_timeout_s(command, rendered, testers_s=testers_s)
    emulator.stop()  # nothing to talk to: the command ends at its first request
    result = run(command)
    assert result.code == 1
    assert f"deadline {expected:.0f} s ({source})" in result.out


def test_a_timeout_below_the_progress_deadline_is_noted(
    run: Run, emulator: EmulatedCluster
) -> None:
    emulator.stop()
    result = run("deploy", "--timeout", "30")
    assert "deadline 30 s (--timeout)" in result.out
    assert "shorter than the Deployment's progressDeadlineSeconds (1800 s)" in result.out


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_the_timeout_must_be_a_positive_number(
    run: Run, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run("deploy", "--timeout", value)
    assert exited.value.code == 2
    assert "is not a positive number of seconds" in capsys.readouterr().err


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_caps_requests_and_sends_none_once_passed() -> None:
    clock = FakeClock()
    limit = deadline.Deadline(100, clock=clock)
    assert limit.request_timeout() == deadline.MAX_REQUEST_S
    clock.now += 80
    assert limit.request_timeout() == pytest.approx(20)
    assert limit.keeping(5) == pytest.approx(15)
    clock.now += 20
    assert limit.remaining() == 0 and limit.keeping(5) == 0
    with pytest.raises(DeadlinePassed, match=r"deadline of 100 s \(--timeout\) passed"):
        limit.request_timeout()


def test_the_deadline_counts_from_the_commands_start() -> None:
    clock = FakeClock()
    limit = deadline.Deadline(30, clock=clock, started_at=clock.now - 10)
    assert limit.remaining() == pytest.approx(20)


@pytest.mark.parametrize(("seconds", "reserve"), [(5, 2), (30, 3), (1920, 10), (math.inf, 10)])
def test_a_wait_keeps_time_back_to_report_a_failure(seconds: float, reserve: float) -> None:
    assert deadline.Deadline(seconds).report_reserve() == reserve
