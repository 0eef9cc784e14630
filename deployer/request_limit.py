"""A time limit on each whole API request, body included.

urllib3's read timeout restarts with every byte, so an API server (or a proxy in front of it)
that trickles its answer would hold one request, and the command, past its deadline. Here each
request's ``_request_timeout`` also bounds the whole exchange: an alarm (``SIGALRM``, which only
the main thread receives; elsewhere the per-read limit is all there is) ends it, and the body is
read within that time rather than later by the caller.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from types import FrameType
from typing import Any

import urllib3
from kubernetes import client

GRACE_S = 0.5
"""How long past its read timeout a request may take in all: a silent server is reported by the
read timeout, as before; a trickling one by this limit."""


class WholeRequestTimeout(urllib3.exceptions.ReadTimeoutError):
    """A request not answered in full within its time: the server kept sending, slowly."""


def limit_whole_requests(api_client: client.ApiClient) -> client.ApiClient:
    """``api_client`` with every request bounded as a whole (see the module's docstring)."""
    rest: Any = api_client.rest_client
    send = rest.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        on_main = threading.current_thread() is threading.main_thread()
        if not isinstance(_request_timeout, int | float) or not on_main:
            return send(*args, _request_timeout=_request_timeout, **kwargs)
        with _Alarm(_request_timeout + GRACE_S, what=f"{_request_timeout:.0f} s"):
            response = send(*args, _request_timeout=_request_timeout, **kwargs)
            response.read()  # callers read the body later, with no limit but the per-read one
            return response

    rest.request = request
    return api_client


class _Alarm:
    """Raise WholeRequestTimeout in the main thread after ``seconds``, leaving an alarm set
    by someone else (a test runner's timeout) to go off when it was due."""

    def __init__(self, seconds: float, *, what: str) -> None:
        self.seconds = seconds
        self.what = what

    def __enter__(self) -> None:
        now = time.monotonic()
        self.limit_at = now + self.seconds
        self.outer_handler = signal.getsignal(signal.SIGALRM)
        outer_delay, self.outer_interval = signal.getitimer(signal.ITIMER_REAL)
        self.outer_at = now + outer_delay if outer_delay > 0 else math.inf
        signal.signal(signal.SIGALRM, self._expire)
        signal.setitimer(signal.ITIMER_REAL, min(self.limit_at, self.outer_at) - now)

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now >= self.limit_at:
            raise WholeRequestTimeout(None, "", f"no whole answer within {self.what}")  # type: ignore[arg-type]
        # The outer alarm was due first: its handler runs, then this limit is set again.
        self.outer_at = math.inf
        if callable(self.outer_handler):
            self.outer_handler(signum, frame)
        signal.setitimer(signal.ITIMER_REAL, max(self.limit_at - time.monotonic(), 0.001))

    def __exit__(self, *_: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.outer_handler)
        if self.outer_at != math.inf:
            remaining = max(self.outer_at - time.monotonic(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, self.outer_interval)
