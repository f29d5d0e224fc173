"""``WSGIServer.drain_keep_alive``: how ``greenpoint wsgi``'s workers stop, in this process.

A kept-alive connection is not closed under a client that may be sending its next
request: it gets one more request within the grace (answered with
``Connection: close``), and only a silent one is closed after the grace.
"""

from __future__ import annotations

import time

import gevent
import pytest
from _wait_helpers import wait_until

import greenpoint
from greenpoint import wsgi

pytestmark = pytest.mark.timeout(20)


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"hi"]


def request(stream) -> bytes:
    """Send one keep-alive GET and read its response (headers and the 2-byte body)."""
    stream.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    with gevent.Timeout(5):
        while not data.endswith(b"\r\n\r\nhi"):
            chunk = stream.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_a_kept_alive_connection_gets_one_more_request_during_a_drain():
    port = wsgi.serve("tcp:0:interface=127.0.0.1", hello, log=None)
    port.wsgi_server.drain_keep_alive = True
    address = f"tcp:127.0.0.1:{port.get_host().port}"
    busy = greenpoint.client_from_string(address).open(timeout=5)
    silent = greenpoint.client_from_string(address).open(timeout=5)
    try:
        assert b"Connection: close" not in request(busy)  # both are kept alive
        assert b"Connection: close" not in request(silent)
        started = time.monotonic()
        stopping = gevent.spawn(port.stop_listening, 10)
        wait_until(lambda: port.closing)  # the busy client's next request comes while stopping
        last = request(busy)
        assert last.startswith(b"HTTP/1.1 200") and b"Connection: close" in last
        assert busy.recv(1) == b""  # closed after that response
        assert silent.recv(1) == b""  # the silent one: closed after the grace
        stopping.get(timeout=5)
        took = time.monotonic() - started
    finally:
        busy.close()
        silent.close()
    assert wsgi.NEW_CONNECTION_GRACE - 0.1 < took < wsgi.NEW_CONNECTION_GRACE + 1
