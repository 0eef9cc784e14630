"""The load test's HTTP client: requests written out once, sent as bytes on one keep-alive
connection per user, answers parsed by geventhttpclient's C parser.

Locust's ``FastHttpUser`` rebuilds and re-validates every request (URL parsing, header merging
and checks, the cookie jar, redirects) although the load test sends the same few requests again
and again; without that bookkeeping a client core sends more than twice as many checked requests
(docs/benchmarks.md). Here each
request is a ``bytes`` object built when the test starts, and a request costs one ``sendall``
and the reads of its answer. No Locust import: the user in the locustfile times the exchange
and reports it.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import gevent.socket
from geventhttpclient.response import HTTPConnectionClosed, HTTPSocketResponse

from loadtest.load_target import name_of

RESPONSE_BLOCK_BYTES: Final = 64 * 1024
"""Bytes asked of each read: an answer of a few kB arrives in one."""


@dataclass(frozen=True)
class Target:
    """Where the requests go, from a base URL such as ``http://triton:8000``, and the name
    they are for (the ``Host`` header; with TLS, the name sent and the certificate's)."""

    scheme: str
    host: str
    port: int
    host_header_override: str = ""
    """The ``Host`` header to send instead of the URL's (an edge that routes on a host name)."""

    @classmethod
    def from_url(cls, url: str, host_header: str = "") -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http://HOST[:PORT] or https://..., got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(
            scheme=parts.scheme, host=parts.hostname, port=port, host_header_override=host_header
        )

    @property
    def host_header(self) -> str:
        if self.host_header_override:
            return self.host_header_override
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    @property
    def server_name(self) -> str:
        """The name sent in TLS (SNI) and checked against the certificate."""
        return name_of(self.host_header_override) if self.host_header_override else self.host


def get_request(target: Target, path: str) -> bytes:
    """An HTTP/1.1 GET of ``path`` (a readiness probe), ready for ``sendall``."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {target.host_header}", "Accept-Encoding: identity"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post_request(target: Target, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 POST of ``body`` to ``path``, head and body, ready for ``sendall``."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class Answer:
    """A response: status, the one header the checks read, and the body."""

    status: int
    header_length: int | None
    """``Inference-Header-Content-Length`` (None when absent: a plain JSON answer)."""
    body: bytes


class KeepAliveConnection:
    """One HTTP/1.1 connection, opened on first use and again after the server closes it.

    ``timeout_s`` bounds the connect and each read (a stalled server raises ``TimeoutError``).
    ``tls`` is the client context of an ``https`` target (``load_target.http_context``; the
    system's trust when None). A request on a connection the server had closed while idle is
    sent once more on a new one, as every keep-alive client does; any other failure is the
    caller's to report.
    """

    def __init__(
        self, target: Target, *, timeout_s: float, tls: ssl.SSLContext | None = None
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._tls = None
        if target.scheme == "https":
            self._tls = tls or ssl.create_default_context()

    def _connect(self) -> socket.socket:
        sock: socket.socket = gevent.socket.create_connection(
            (self.target.host, self.target.port), timeout=self.timeout_s
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.target.server_name)
        return sock

    def exchange(self, request: bytes, header_name: str = "") -> Answer:
        """Send ``request`` and read the whole answer (``header_name``: the header whose value
        ``Answer.header_length`` carries)."""
        reused = self._sock is not None
        try:
            return self._exchange(request, header_name)
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._exchange(request, header_name)
        except BaseException:
            self.close()
            raise

    def _exchange(self, request: bytes, header_name: str) -> Answer:
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        sock.sendall(request)
        response = HTTPSocketResponse(sock, block_size=RESPONSE_BLOCK_BYTES, method="POST")
        body = response.read()
        if response.should_close():
            self.close()
        length = response.get(header_name) if header_name else None
        return Answer(
            status=response.status_code,
            header_length=None if length is None else int(str(length)),
            body=body,
        )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
