"""Servers on loopback, as the demo, the benchmarks and the stand-ins run them: ports nothing
listens on yet, and whether a server answers."""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.error
import urllib.request
from typing import Final

LOOPBACK: Final = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` different TCP ports free on ``host`` right now (bound together, so none
    repeats). Another program may still take one before the caller's server binds it: callers
    that can retry do (see ``standins.registry``)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    (port,) = free_ports(1, host)
    return port


def answers(url: str, *, timeout_s: float = 2.0, context: ssl.SSLContext | None = None) -> bool:
    """Whether a GET of ``url`` answers 200 now; a refused connection, a timeout or another
    status is False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False
