"""A response on a connection about to close says ``Connection: close`` (RFC 9112 9.6)."""

from __future__ import annotations

import pytest

import greenpoint
from greenpoint import wsgi
from tests.test_wsgi import environ_app

pytestmark = pytest.mark.timeout(20)


def exchange(port, request: bytes) -> bytes:
    client = greenpoint.client_from_string(f"tcp:127.0.0.1:{port.get_host().port}")
    with client.open(timeout=5) as stream:
        stream.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw or request.count(b"GET") > raw.count(b"HTTP/1.1 200"):
            data = stream.recv(65536)
            if not data:
                break
            raw += data
        if b"Connection: close" in raw:
            while data := stream.recv(65536):  # and the server does close
                raw += data
    return raw


def test_client_asking_for_close_is_told_close():
    with wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, log=None) as port:
        raw = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close" in head


def test_keep_alive_response_does_not_say_close():
    with wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, log=None) as port:
        raw = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"Connection:" not in raw.partition(b"\r\n\r\n")[0]


def test_http_1_0_keeps_its_own_header():
    with wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, log=None) as port:
        raw = exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.count(b"Connection:") == 1
    assert b"\r\nConnection: close" in head
