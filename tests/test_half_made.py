"""A descriptor a socket class failed to wrap is closed once, by its one owner.

gevent's socket wraps the descriptor first and makes its libev watchers after; when
that fails, the half-made socket (kept alive by the error's traceback) would close
the descriptor again when collected, by then perhaps another file's. The accept paths
have their own tests in test_accept.py; these are the other places that wrap one.
"""

from __future__ import annotations

import errno
import gc
import os
import socket

import gevent
import pytest
from _fd_reuse_helpers import assert_reuse_survives, fail_watchers, reuse_closed
from gevent import socket as gsocket

from greenpoint._callback_transport import RAW_SOCKET, _gevent_socket_around
from greenpoint._half_made import close_unwrapped, detach_half_made
from greenpoint._stamped_socket import stamped

pytestmark = pytest.mark.timeout(10)


def half_made_socket(fd):
    """Raise what gevent's socket constructor raises when its watchers fail for ``fd``."""
    gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)


def test_close_unwrapped_closes_once_what_a_half_made_socket_holds(monkeypatch):
    left, right = socket.socketpair()
    right.close()
    fd = left.detach()
    fail_watchers(monkeypatch)
    try:
        half_made_socket(fd)
    except OSError as exc:
        close_unwrapped(fd, exc)
        reuse_closed(fd)
        del exc
    monkeypatch.undo()
    assert_reuse_survives(fd)


def test_detach_half_made_leaves_what_the_catching_frame_holds(monkeypatch):
    # The frame that caught the error owns what it holds: its socket stays open.
    left, right = socket.socketpair()
    fd = left.fileno()
    fail_watchers(monkeypatch)
    try:
        half_made_socket(fd)
    except OSError as exc:
        detach_half_made(fd, exc)
        del exc
    monkeypatch.undo()
    gc.collect()
    assert left.fileno() == fd
    os.fstat(fd)
    left.close()
    right.close()


def test_stamped_closes_the_descriptor_once_when_the_stamped_socket_fails(monkeypatch):
    left, right = gsocket.socketpair(socket.AF_UNIX)
    right.close()
    fd = left.fileno()
    fail_watchers(monkeypatch)
    with pytest.raises(OSError) as caught:
        stamped(left)
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOMEM
    assert left.fileno() == -1  # detached: the stamped socket was to own fd
    reuse_closed(fd)
    del caught
    assert_reuse_survives(fd)


def test_a_failed_gevent_socket_around_a_raw_socket_leaves_it_open(monkeypatch):
    left, right = socket.socketpair()
    raw = RAW_SOCKET(left.family, left.type, left.proto, left.detach())
    fd = raw.fileno()
    fail_watchers(monkeypatch)
    with pytest.raises(OSError) as caught:
        _gevent_socket_around(raw)
    monkeypatch.undo()
    del caught
    gevent.idle()
    gc.collect()
    try:
        assert raw.fileno() == fd
        os.fstat(fd)  # still the raw socket's, still open
        raw.sendall(b"x")
        assert right.recv(1) == b"x"
    finally:
        raw.close()
        right.close()
