"""The load test's HTTP client (``loadtest/http_wire.py``) against small servers on loopback that
misbehave on purpose (the real Triton is in the locustfile's tests).

Cases: a request is written out once with its Host and Content-Length; answers are read whole,
the header the checks need picked out; a server that answers `Connection: close` gets a new
connection for the next request; one that closes an idle keep-alive connection without a word
gets the request again on a new connection, once; a server that stalls is cut off at the
timeout; a base URL that is not http(s)://HOST is refused, saying what is expected; a Host
header given for an edge replaces the URL's in requests and probes and names the server in
TLS (the real TLS edge is in test_ingress.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from loadtest.http_wire import KeepAliveConnection, Target, get_request, post_request

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    b"Inference-Header-Content-Length: 2\r\nContent-Length: 6\r\n\r\n{}abcd"
)


def read_request(conn: socket.socket) -> bytes:
    """One request, head and body (by its Content-Length); b'' when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(
            b":"
        )[1]
    )
    while len(body) < length:
        body += conn.recv(65536)
    return data


ServerFactory = Callable[[Callable[[socket.socket], None]], tuple[Target, list[int]]]


@pytest.fixture
def server() -> Iterator[ServerFactory]:
    """Start a loopback server whose every accepted connection runs ``handle``; returns the
    target and a list that counts the connections accepted."""
    listeners: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> tuple[Target, list[int]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        accepted: list[int] = []

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return Target("http", "127.0.0.1", listener.getsockname()[1]), accepted

    yield start
    for listener in listeners:
        listener.close()


def test_request_is_written_once_with_host_and_length() -> None:
    wire = post_request(Target("http", "triton", 80), "/v2/models/bert/infer", b"xyz", {"A": "b"})
    assert wire == (
        b"POST /v2/models/bert/infer HTTP/1.1\r\nHost: triton\r\nA: b\r\n"
        b"Content-Length: 3\r\n\r\nxyz"
    )
    assert Target.from_url("http://10.0.0.1:8000/").host_header == "10.0.0.1:8000"
    assert Target.from_url("https://triton.example.com").port == 443


def test_a_host_header_replaces_the_urls_and_names_the_tls_server() -> None:
    target = Target.from_url("https://34.1.2.3:8443", host_header="triton.example.com")
    assert (target.host, target.port, target.host_header) == (
        "34.1.2.3",
        8443,
        "triton.example.com",
    )
    assert target.server_name == "triton.example.com"
    assert post_request(target, "/p", b"", {}).startswith(
        b"POST /p HTTP/1.1\r\nHost: triton.example.com\r\n"
    )
    assert get_request(target, "/v2/health/ready") == (
        b"GET /v2/health/ready HTTP/1.1\r\nHost: triton.example.com\r\n"
        b"Accept-Encoding: identity\r\n\r\n"
    )
    with_port = Target.from_url("https://34.1.2.3", host_header="triton.example.com:8443")
    assert (with_port.host_header, with_port.server_name) == (
        "triton.example.com:8443",
        "triton.example.com",
    )
    # Without one, the URL names both.
    assert Target.from_url("https://t.example.com:8443").server_name == "t.example.com"


def test_keep_alive_answers_are_read_whole(server: ServerFactory) -> None:
    def handle(conn: socket.socket) -> None:
        while read_request(conn):
            conn.sendall(ANSWER)
        conn.close()

    target, accepted = server(handle)
    connection = KeepAliveConnection(target, timeout_s=5)
    wire = post_request(target, "/x", b"body", {})
    for _ in range(3):
        answer = connection.exchange(wire, "Inference-Header-Content-Length")
        assert (answer.status, answer.header_length, answer.body) == (200, 2, b"{}abcd")
    assert len(accepted) == 1
    connection.close()


def test_connection_close_and_idle_close_reconnect(server: ServerFactory) -> None:
    # The server answers once per connection and closes it without saying so.
    def handle(conn: socket.socket) -> None:
        if read_request(conn):
            conn.sendall(ANSWER)
        time.sleep(0.1)
        conn.close()

    target, accepted = server(handle)
    connection = KeepAliveConnection(target, timeout_s=5)
    wire = post_request(target, "/x", b"body", {})
    for _ in range(3):
        assert connection.exchange(wire, "Inference-Header-Content-Length").status == 200
        time.sleep(0.3)  # the server has closed the idle connection by now
    assert len(accepted) == 3
    connection.close()


def test_a_stalled_server_is_cut_off(server: ServerFactory) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        time.sleep(3)
        conn.close()

    target, _ = server(handle)
    connection = KeepAliveConnection(target, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connection.exchange(post_request(target, "/x", b"", {}), "X")
    assert time.monotonic() - started < 2


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected http://HOST\[:PORT\]"):
        Target.from_url("34.1.2.3:8000")
