"""The bounded wait, on a fake clock.

Cases: a condition that holds at once is called once and no time passes; one that holds later
ends the wait then; one that never holds ends at the deadline, asked one last time there, and
never sleeps past it; an exception from the condition ends the wait at once.
"""

from __future__ import annotations

import pytest

from common.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_condition_that_holds_at_once() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def holds() -> bool:
        calls.append(clock.now)
        return True

    assert wait_until(holds, timeout_s=5, interval_s=1, sleep=clock.sleep, clock=clock)
    assert calls == [0.0] and clock.sleeps == []


def test_the_wait_ends_when_the_condition_holds() -> None:
    clock = FakeClock()

    def later() -> bool:
        return clock.now >= 3

    assert wait_until(later, timeout_s=10, interval_s=1, sleep=clock.sleep, clock=clock)
    assert clock.now == 3


def test_the_wait_is_bounded_and_asks_once_more_at_the_deadline() -> None:
    clock = FakeClock()
    asked: list[float] = []

    def never() -> bool:
        asked.append(clock.now)
        return False

    assert not wait_until(never, timeout_s=2.5, interval_s=1, sleep=clock.sleep, clock=clock)
    assert asked == [0.0, 1.0, 2.0, 2.5]
    assert clock.sleeps == [1, 1, 0.5]


def test_an_exception_ends_the_wait() -> None:
    clock = FakeClock()

    def died() -> bool:
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(died, timeout_s=10, interval_s=1, sleep=clock.sleep, clock=clock)
    assert clock.now == 0
