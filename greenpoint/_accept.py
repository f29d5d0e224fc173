"""Accepting on a gevent listening socket without its Python wrapper. The I/O edge.

gevent's ``socket.accept()`` is Python that, on every connection, converts the
listener's ``type`` and ``family`` to enums and reads the default timeout and the
listener's own. gevent's ``StreamServer`` skips all of that by calling the raw
non-blocking socket's ``_accept()``; :func:`fast_acceptor` does the same and waits
on the listener's read watcher only when nothing is pending (EAGAIN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent import socket as gsocket

__all__ = ["fast_acceptor"]


def fast_acceptor(listener: Any) -> Callable[[], tuple[Any, Any]] | None:
    """An ``accept()`` for ``listener`` that behaves as gevent's, or ``None``.

    Only for a plain gevent socket (not a subclass, whose ``accept`` may do more).
    The new socket gets the listener's family, type and protocol (read once) and
    gevent's default timeout, as gevent's own ``accept()`` gives it.
    """
    if type(listener) is not gsocket.socket:
        return None
    family, kind, proto = listener.family, listener.type, listener.proto
    make = gsocket.socket

    def accept() -> tuple[Any, Any]:
        while True:
            try:
                # Looked up on every call: close() swaps ``_sock`` for a closed
                # one that raises EBADF, as gevent's accept() would.
                fd, address = listener._sock._accept()
            except BlockingIOError:
                if listener.timeout == 0.0:
                    raise
                # Honours the listener's timeout; raises once it is closed.
                listener._wait(listener._read_event)
                continue
            return make(family, kind, proto, fileno=fd), address

    return accept
