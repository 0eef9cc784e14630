"""Each API request is bounded as a whole, body included, against an emulator whose answers
trickle in a byte at a time and never end (the end-to-end cases are in test_deadlines.py).

Cases: the request ends at its limit with WholeRequestTimeout, a urllib3 read timeout (so the
deployer reports it as any timeout); an alarm someone else set (a test runner's timeout) that
is due first still goes off, and the limit still ends the request; one due later is set again
with the time it has left, its handler back in place; a request outside the main thread keeps
urllib3's per-read limit only, since only the main thread receives alarms.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
import urllib3
from kubernetes import client

from deployer.request_limit import WholeRequestTimeout, limit_whole_requests
from standins.emulator.apiserver import TRICKLE_S
from standins.emulator.cluster import EmulatedCluster


@pytest.fixture
def trickling(emulator: EmulatedCluster) -> Iterator[client.ApiClient]:
    """An API client of the emulator, which trickles every answer."""
    emulator.trickle()
    configuration = client.Configuration()
    configuration.host = emulator.url
    api = limit_whole_requests(client.ApiClient(configuration))
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


def get_version(api: client.ApiClient, timeout_s: float) -> None:
    """``GET /version``, its body read (as the client's callers do) before returning."""
    url = f"{api.configuration.host}/version"
    rest: Any = api.rest_client
    rest.request("GET", url, _request_timeout=timeout_s).read()


@pytest.fixture
def outer_alarm() -> Iterator[list[float]]:
    """A SIGALRM handler of a test's own, recording when it ran; the previous one put back."""
    fired: list[float] = []

    def record(signum: int, frame: FrameType | None) -> None:
        fired.append(time.monotonic())

    previous = signal.signal(signal.SIGALRM, record)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if previous_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *previous_timer)


def test_a_trickling_answer_ends_at_the_limit(trickling: client.ApiClient) -> None:
    started = time.monotonic()
    with pytest.raises(WholeRequestTimeout) as raised:
        get_version(trickling, 1.0)
    assert 1.0 <= time.monotonic() - started <= 3.0
    assert isinstance(raised.value, urllib3.exceptions.ReadTimeoutError)
    assert "no whole answer within 1 s" in str(raised.value)


def test_an_earlier_alarm_still_goes_off(
    trickling: client.ApiClient, outer_alarm: list[float]
) -> None:
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    with pytest.raises(WholeRequestTimeout):
        get_version(trickling, 1.0)
    assert len(outer_alarm) == 1
    assert 0.3 <= outer_alarm[0] - started < 1.0, "when it was due, not at the limit"
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0, "it went off once"


def test_a_later_alarm_is_set_again_with_its_time_left(
    trickling: client.ApiClient, outer_alarm: list[float]
) -> None:
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    with pytest.raises(WholeRequestTimeout):
        get_version(trickling, 1.0)
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert 26.0 <= left <= 29.0, left
    assert outer_alarm == []
    assert signal.getsignal(signal.SIGALRM) is not None
    assert signal.getsignal(signal.SIGALRM).__name__ == "record"  # type: ignore[union-attr]


def test_outside_the_main_thread_only_reads_are_limited(trickling: client.ApiClient) -> None:
    """No alarm there (signal.signal would refuse): a read that waits longer than the limit
    (a byte every TRICKLE_S) ends it, as urllib3 alone would."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            get_version(trickling, TRICKLE_S / 2)
            outcome.append(None)
        except BaseException as exc:  # recorded for the assertions below
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=10.0)
    assert len(outcome) == 1
    assert isinstance(outcome[0], urllib3.exceptions.ReadTimeoutError)
    assert not isinstance(outcome[0], WholeRequestTimeout)
