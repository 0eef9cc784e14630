"""A bounded wait: poll a condition until it holds or the time is up, never longer."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    interval_s: float,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Call ``condition`` every ``interval_s`` until it returns True (then True) or
    ``timeout_s`` has passed (then False). It is called at least once, and once more at the
    deadline, so a wait never ends on a stale answer. An exception from ``condition`` ends the
    wait (a process that died is not worth waiting for). ``sleep`` and ``clock`` are the
    caller's (gevent's sleep inside Locust, a fake clock in tests)."""
    deadline = clock() + timeout_s
    while True:
        if condition():
            return True
        remaining = deadline - clock()
        if remaining <= 0:
            return False
        sleep(min(interval_s, remaining))
