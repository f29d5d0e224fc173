"""A socket constructor that fails after wrapping its descriptor, and checks that the
descriptor is then closed exactly once.

gevent's socket (and ``ServedSocket``) wrap the descriptor first and make their libev
watcher after; if that fails, the half-made socket (kept alive by the error's
traceback) still holds the descriptor. Whoever owns it must close it at once, and
nothing may close the number again later, when it may belong to someone else: the
checks give the freed number to another file and see that it survives collection.
"""

from __future__ import annotations

import errno
import gc
import os
from types import SimpleNamespace

import gevent
import pytest
from gevent import _socket3

from greenpoint import _served_socket
from greenpoint._served_socket import ServedSocket


def fail_watchers(monkeypatch, make=None) -> list[int]:
    """Make the watcher creation of ``make`` (gevent's socket class by default, or
    ``ServedSocket``) fail; give the list of the descriptors it was asked for."""
    seen: list[int] = []

    def io(fd, events):
        seen.append(fd)
        raise OSError(errno.ENOMEM, "no watcher for you")

    hub = SimpleNamespace(loop=SimpleNamespace(io=io))
    if make is ServedSocket:
        monkeypatch.setattr(_served_socket, "get_hub_noargs", lambda: hub)
    else:
        monkeypatch.setattr(_socket3, "get_hub", lambda: hub)
    return seen


def reuse_closed(fd: int) -> None:
    """Check ``fd`` is closed now (not left to a finalizer, nor leaked), then give its
    number to another file, as another greenlet or thread opening one would."""
    with pytest.raises(OSError) as caught:
        os.fstat(fd)
    assert caught.value.errno == errno.EBADF
    reuse = os.open(os.devnull, os.O_RDONLY)
    if reuse != fd:
        os.dup2(reuse, fd)
        os.close(reuse)


def assert_reuse_survives(fd: int) -> None:
    """Once everything from the failure is collected, ``fd`` is still open (then it is
    closed here): nothing closed the number a second time."""
    gevent.idle()  # a hub callback that saw the error has returned
    gc.collect()
    try:
        os.fstat(fd)
    finally:
        os.close(fd)
