"""The cheapest way to accept from a listener, for the per-connection hot path.

gevent's ``socket.accept()`` is a Python wrapper that, on every call, converts the
listener's ``type`` to an enum and reads the default timeout and the listener's own
timeout. gevent's ``StreamServer`` skips all of that by accepting on the raw
non-blocking socket underneath. :func:`accept_function` does the same for a plain
gevent listening socket (about 15k CPU instructions per connection here) and falls
back to the listener's own ``accept`` for anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent import socket as gsocket

__all__ = ["accept_function"]


def accept_function(
    listener: Any, make: type[Any] = gsocket.socket
) -> Callable[[], tuple[Any, Any]]:
    """``accept()`` for ``listener``: a fast one for a plain gevent socket, else its own.

    The fast one makes each accepted socket as ``make`` (gevent's socket class or a
    subclass of it: ``serve()`` hands its handlers a ``ServedSocket``).
    """
    if type(listener) is not gsocket.socket:
        accept: Callable[[], tuple[Any, Any]] = listener.accept
        return accept
    return _raw_accept(listener, make)


def _raw_accept(listener: Any, make: type[Any]) -> Callable[[], tuple[Any, Any]]:
    # What gevent's accept() gives every new socket, read once: the listener's
    # family, type and protocol do not change while it listens.
    family, kind, proto = listener.family, listener.type, listener.proto

    def accept() -> tuple[Any, Any]:
        while True:
            try:
                # listener._sock each time: after close() it is gevent's closed
                # placeholder (EBADF), never the old socket whose close gevent may
                # still be deferring.
                fd, address = listener._sock._accept()
            except BlockingIOError:
                if listener.timeout == 0.0:  # a non-blocking listener: as gevent
                    raise
                # Wait as gevent's accept does: the listener's timeout applies,
                # and closing the listener wakes the wait with EBADF.
                listener._wait(listener._read_event)
                continue
            return make(family, kind, proto, fileno=fd), address

    return accept
