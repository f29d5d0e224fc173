"""The fast accept path must behave like gevent's own ``socket.accept()``."""

from __future__ import annotations

import errno
import socket

import gevent
import pytest
from _fd_reuse_helpers import assert_reuse_survives, fail_watchers, reuse_closed
from gevent import socket as gsocket

from greenpoint._accept import AcceptWatcher, accept_function, can_watch
from greenpoint._served_socket import ServedSocket

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


def test_accept_watcher_accepts_in_the_hub(listener):
    accepted = []

    def on_accept(stream, address):
        accepted.append(stream)
        return len(accepted) < 2

    acceptor = AcceptWatcher(listener)
    clients = [gsocket.create_connection(listener.getsockname()) for _ in range(2)]
    try:
        assert acceptor.run(on_accept) is None  # on_accept said stop after two
        assert len(accepted) == 2
        assert all(type(s) is gsocket.socket for s in accepted)
        clients[0].sendall(b"hi")
        assert accepted[0].recv(10) == b"hi"
    finally:
        acceptor.close()
        for sock in accepted + clients:
            sock.close()


def test_accept_watcher_makes_what_it_is_told(listener):
    class Mine(gsocket.socket):
        __slots__ = ()

    acceptor = AcceptWatcher(listener, Mine)
    client = gsocket.create_connection(listener.getsockname())
    got = []
    try:
        assert acceptor.run(lambda s, a: got.append(s)) is None
        assert type(got[0]) is Mine
    finally:
        acceptor.close()
        client.close()
        for sock in got:
            sock.close()


def test_accept_watcher_hands_back_the_error_when_the_listener_closes_under_it(listener):
    acceptor = AcceptWatcher(listener)
    gevent.spawn_later(0.02, listener.close)
    error = acceptor.run(lambda s, a: True)
    assert isinstance(error, OSError)
    assert error.errno == errno.EBADF
    acceptor.close()


def test_accept_watcher_only_for_blocking_gevent_listeners(listener):
    assert can_watch(listener)
    listener.settimeout(1.0)
    assert not can_watch(listener)
    listener.settimeout(None)
    listener.setblocking(False)
    assert not can_watch(listener)
    assert not can_watch(object())


# -- a socket class whose constructor fails after it wrapped the descriptor ----------
# (tests/_fd_reuse_helpers.py says why and how)


@pytest.mark.parametrize("make", [gsocket.socket, ServedSocket])
def test_accept_closes_a_descriptor_the_socket_class_failed_to_wrap_once(
    listener, monkeypatch, make
):
    accept = accept_function(listener, make)
    client = socket.create_connection(listener.getsockname())
    try:
        seen = fail_watchers(monkeypatch, make)
        with pytest.raises(OSError) as caught:
            accept()
        monkeypatch.undo()
        assert caught.value.errno == errno.ENOMEM
        (fd,) = seen
        reuse_closed(fd)
        del caught  # the traceback holds the half-built socket
        assert_reuse_survives(fd)
    finally:
        client.close()


@pytest.mark.parametrize("make", [gsocket.socket, ServedSocket])
def test_accept_watcher_closes_a_descriptor_the_socket_class_failed_to_wrap_once(
    listener, monkeypatch, make
):
    acceptor = AcceptWatcher(listener, make)
    client = socket.create_connection(listener.getsockname())
    try:
        seen = fail_watchers(monkeypatch, make)
        error = acceptor.run(lambda stream, address: True)
        monkeypatch.undo()
        assert isinstance(error, OSError)
        assert error.errno == errno.ENOMEM
        (fd,) = seen
        reuse_closed(fd)
        del error  # the traceback holds the half-built socket
        assert_reuse_survives(fd)
    finally:
        acceptor.close()
        client.close()
