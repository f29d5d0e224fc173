"""greenpoint.wsgi under slow and oversized requests: 408, 414, 431, keep-alive, idle bodies."""

from __future__ import annotations

import logging
import time

import gevent
import pytest
from _net_helpers import read_all
from _wait_helpers import wait_until
from gevent import socket as gsocket

from greenpoint import wsgi
from greenpoint._http_limits import HTTPLimits, RequestRejected, read_header_block

pytestmark = pytest.mark.timeout(30)

LOOPBACK = "tcp:0:interface=127.0.0.1"


def hello(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + body]


def _connect(port):
    return gsocket.create_connection(("127.0.0.1", port.get_host().port), timeout=10)


def _serve(**options):
    return wsgi.serve(LOOPBACK, hello, log=None, **options)


# -- pure -----------------------------------------------------------------------------


class Lines:
    def __init__(self, data):
        self.data = data

    def readline(self, limit):
        end = self.data.find(b"\n")
        end = len(self.data) if end < 0 else end + 1
        line, self.data = self.data[: min(end, limit)], self.data[min(end, limit) :]
        return line


@pytest.mark.parametrize(
    ("head", "size", "count", "ok"),
    [
        (b"A: b\r\n\r\n", 10, 10, True),
        (b"A: 123456\r\n\r\n", 9, 10, True),  # exactly the size
        (b"A: 1234567\r\n\r\n", 9, 10, False),  # one over
        (b"A: 123456\n\n", 9, 10, True),  # bare LF
        (b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 10, 3, True),
        (b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 10, 3, False),
    ],
)
def test_header_block_limits(head, size, count, ok):
    limits = HTTPLimits(max_header_size=size, max_header_count=count)
    if ok:
        assert read_header_block(Lines(head + b"body"), limits) == head
    else:
        with pytest.raises(RequestRejected) as info:
            read_header_block(Lines(head), limits)
        assert info.value.status == "431"


@pytest.mark.parametrize(
    "options",
    [{"header_timeout": 0}, {"keepalive_timeout": -1}, {"max_header_count": 0}],
)
def test_bad_http_limits_are_refused_naming_them(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        HTTPLimits(**options)


# -- real connections -----------------------------------------------------------------


def test_a_slow_request_head_gets_408_and_is_closed_within_header_timeout(caplog):
    caplog.set_level(logging.INFO)
    with _serve(header_timeout=0.5) as port:
        with _connect(port) as client:
            started = time.monotonic()
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never the empty line
            answer = read_all(client)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 0.4 <= waited < 3.0
        with _connect(port) as silent:  # sends nothing at all: closed, no 408
            assert read_all(silent) == b""
        wait_until(lambda: port.stats.header_timeouts == 2)
    lines = [r.getMessage() for r in caplog.records if "header_timeout" in r.getMessage()]
    assert len(lines) == 2 and all("127.0.0.1" in line for line in lines)
    assert not any(r.exc_info for r in caplog.records)


def test_bytes_trickling_in_do_not_extend_the_header_timeout():
    with _serve(header_timeout=0.6) as port:
        with _connect(port) as client:
            started = time.monotonic()
            closed_after = None
            for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\n":
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    break
                client.settimeout(0.1)
                try:
                    if client.recv(100).startswith(b"HTTP/1.1 408"):
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    pass
        assert closed_after is not None and closed_after < 3.0


def test_keepalive_timeout_closes_an_idle_kept_alive_connection_quietly():
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with _serve(keepalive_timeout=0.3, header_timeout=5) as port:
        with _connect(port) as client:
            client.sendall(request)
            first = client.recv(65536)
            assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"hello ")
            client.sendall(request)  # reuses the connection at once: served
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert read_all(client) == b""  # then closed, with no 408
            assert 0.25 <= time.monotonic() - started < 3.0
        wait_until(lambda: port.stats.keepalive_timeouts == 1)


def test_a_busy_kept_alive_connection_outlives_both_timeouts():
    # Requests keep coming for longer than keepalive_timeout and header_timeout
    # together: each wait and each head gets its own timer. (A timer re-armed per
    # request kept its first deadline in gevent 26.9 and closed the connection.)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with _serve(keepalive_timeout=0.3, header_timeout=0.3) as port:
        with _connect(port) as client:
            started = time.monotonic()
            served = 0
            while time.monotonic() - started < 1.5:
                client.sendall(request)
                assert client.recv(65536).startswith(b"HTTP/1.1 200"), served
                served += 1
                gevent.sleep(0.1)  # the behaviour: paced requests, each under both timeouts
        assert served >= 5
        assert port.stats.keepalive_timeouts == 0 and port.stats.header_timeouts == 0


def test_an_idle_kept_alive_connection_never_gets_408_from_header_timeout():
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with _serve(header_timeout=0.3) as port:  # no keepalive_timeout
        with _connect(port) as client:
            client.sendall(request)
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
            gevent.sleep(0.8)  # the behaviour: idle between requests, past header_timeout
            client.sendall(request)
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        assert port.stats.header_timeouts == 0


def test_a_long_request_line_gets_414_and_big_headers_get_431():
    with _serve(max_request_line=100, max_header_size=50, max_header_count=5) as port:
        cases = [
            (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
            (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 100 + b"\r\n\r\n", b"431"),
            (
                b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10)) + b"\r\n",
                b"431",
            ),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"200"),
        ]
        for request, status in cases:
            with _connect(port) as client:
                client.sendall(request)
                assert read_all(client).split(b" ")[1] == status
        assert port.stats.rejected_requests == 3


def test_a_stalled_body_upload_is_closed_by_idle_timeout_without_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    with _serve(idle_timeout=0.4) as port:
        with _connect(port) as client:
            client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            started = time.monotonic()
            answer = read_all(client)
            assert time.monotonic() - started < 3.0
        assert b"500" not in answer
        wait_until(lambda: port.stats.closed_idle == 1)
    assert not any(r.exc_info for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_wsgi_serve_passes_connection_limits_to_the_port():
    with _serve(max_connections=3, max_per_peer=2, idle_timeout=9) as port:
        assert port.limits.max_connections == 3
        assert port.limits.max_per_peer == 2
        assert port.limits.idle_timeout == 9.0
