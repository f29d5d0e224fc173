"""TCP_NODELAY on accepted connections, and small WSGI responses in one write: the
keep-alive stall that Nagle's algorithm and delayed ACKs make (about 40 ms a request)
must not happen, with the default or with ``nodelay=0``."""

from __future__ import annotations

import socket as stdsocket
import time

import gevent
import pytest
from _wait_helpers import wait_until

import greenpoint
from greenpoint import wsgi

pytestmark = pytest.mark.timeout(30)

LOOPBACKS = [("tcp:0:interface=127.0.0.1", "127.0.0.1"), ("tcp6:0:interface=\\:\\:1", "::1")]


def _accepted_nodelay(description: str, host: str) -> int:
    seen = []

    def handler(stream, address):
        seen.append(stream.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY))
        stream.close()

    with greenpoint.server_from_string(description).serve(handler) as port:
        address = (host, port.get_host().port)
        with gevent.socket.create_connection(address, timeout=5) as sock:
            sock.recv(1)
            wait_until(lambda: seen, what="the handler's socket option")
    return seen[0]


@pytest.mark.parametrize(("description", "host"), LOOPBACKS)
def test_accepted_connections_have_nodelay(description, host):
    assert _accepted_nodelay(description, host)


@pytest.mark.parametrize(("description", "host"), LOOPBACKS)
def test_nodelay_0_leaves_nagle_on(description, host):
    assert not _accepted_nodelay(description + ":nodelay=0", host)


def test_nodelay_is_in_the_description_only_when_off():
    assert "nodelay" not in str(greenpoint.server_from_string("tcp:80"))
    off = greenpoint.server_from_string("tcp:80:nodelay=0")
    assert str(off) == "tcp4:80:nodelay=0"
    assert greenpoint.server_from_string(str(off)) == off


def _hello(environ, start_response):
    body = b"hello" if environ["PATH_INFO"] == "/" else b"x" * 200_000
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _keep_alive_requests(sock, count: int, path: str = "/") -> list[bytes]:
    """``count`` requests one after another on one connection; each response whole."""
    bodies = []
    reader = sock.makefile("rb")
    try:
        for _ in range(count):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            length = None
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            bodies.append(reader.read(length))
    finally:
        reader.close()
    return bodies


@pytest.mark.parametrize("keys", ["", ":nodelay=0"])
def test_keep_alive_requests_do_not_stall(keys):
    # With the stall each request waits for a delayed ACK (40 ms on Linux): 200
    # requests took 8.8 s. Without it they take a few ms each on a busy machine.
    count = 200
    with wsgi.serve(f"tcp:0:interface=127.0.0.1{keys}", _hello, log=None) as port:
        address = ("127.0.0.1", port.get_host().port)
        with gevent.socket.create_connection(address, timeout=5) as sock:
            _keep_alive_requests(sock, 5)  # warm up
            started = time.monotonic()
            bodies = _keep_alive_requests(sock, count)
            elapsed = time.monotonic() - started
    assert bodies == [b"hello"] * count
    assert elapsed < count * 0.040 / 4, f"{count} requests took {elapsed:.2f} s"


def test_a_large_response_and_head_requests_arrive_whole():
    with wsgi.serve("tcp:0:interface=127.0.0.1", _hello, log=None) as port:
        address = ("127.0.0.1", port.get_host().port)
        with gevent.socket.create_connection(address, timeout=5) as sock:
            assert _keep_alive_requests(sock, 2, "/big") == [b"x" * 200_000] * 2
            sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"hello"):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
    head, get = data.split(b"HTTP/1.1 200")[1:]
    assert b"hello" not in head and get.endswith(b"\r\n\r\nhello")
