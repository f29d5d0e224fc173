"""The fast accept path must behave like gevent's own ``socket.accept()``."""

from __future__ import annotations

import errno
import socket

import gevent
import pytest
from gevent import socket as gsocket

from greenpoint._accept import accept_function

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def listener():
    sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def test_a_plain_gevent_listener_gets_the_fast_path(listener):
    accept = accept_function(listener)
    assert accept != listener.accept


def test_other_listeners_keep_their_own_accept():
    class Custom:
        def accept(self):
            return "stream", "address"

    custom = Custom()
    assert accept_function(custom)() == ("stream", "address")


def test_accepted_socket_is_what_gevent_would_give(listener):
    accept = accept_function(listener)
    client = gsocket.create_connection(listener.getsockname())
    try:
        stream, address = accept()
        with stream:
            assert type(stream) is gsocket.socket
            assert stream.family == socket.AF_INET
            assert stream.type == socket.SOCK_STREAM
            assert stream.gettimeout() == socket.getdefaulttimeout()
            assert address == client.getsockname()
            client.sendall(b"ping")
            assert stream.recv(10) == b"ping"
    finally:
        client.close()


def test_waits_without_blocking_other_greenlets(listener):
    accept = accept_function(listener)
    waiter = gevent.spawn(accept)
    gevent.idle()  # every greenlet has run
    assert not waiter.ready()  # parked in the hub, not spinning or blocking us
    client = gsocket.create_connection(listener.getsockname())
    try:
        stream, _ = waiter.get(timeout=5)
        stream.close()
    finally:
        client.close()


def test_a_non_blocking_listener_raises_as_gevent_does(listener):
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        accept_function(listener)()


def test_the_listener_timeout_applies(listener):
    listener.settimeout(0.05)
    with pytest.raises(socket.timeout):
        accept_function(listener)()


def test_closing_the_listener_wakes_a_waiting_accept(listener):
    accept = accept_function(listener)
    waiter = gevent.spawn(accept)
    gevent.idle()  # every greenlet has run: the waiter is parked in accept
    listener.close()
    with pytest.raises(OSError) as caught:
        waiter.get(timeout=5)
    assert caught.value.errno == errno.EBADF


def test_accept_after_close_fails_with_ebadf(listener):
    accept = accept_function(listener)
    listener.close()
    with pytest.raises(OSError) as caught:
        accept()
    assert caught.value.errno == errno.EBADF
