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
from errno import EBADF
from typing import Any

from gevent import socket as gsocket
from gevent.hub import Waiter, get_hub

from greenpoint._half_made import close_unwrapped

__all__ = ["AcceptWatcher", "accept_function", "can_watch"]


def accept_function(
    listener: Any, make: type[Any] = gsocket.socket
) -> Callable[[], tuple[Any, Any]]:
    """``accept()`` for ``listener``: a fast one for a plain gevent socket, else its own.

    The fast one makes each accepted socket as ``make(family, type, proto, fd)``
    (gevent's socket class or a subclass of it: ``serve()`` hands its handlers a
    ``ServedSocket``), positionally: a keyword costs a dict per connection.
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
            try:
                return make(family, kind, proto, fd), address
            except BaseException as exc:  # each descriptor closed once, at once
                close_unwrapped(fd, exc)
                raise

    return accept


# How many connections one wake-up of an AcceptWatcher takes before it lets the loop
# run others (gevent's StreamServer takes up to 100 the same way).
MAX_ACCEPTS_PER_WAKE = 100


class AcceptWatcher:
    """Accepting from the hub itself: a read watcher on the listener, no greenlet.

    The accept loop of a greenlet costs two greenlet switches, a ``Waiter`` and a
    watcher started and stopped on every wake-up. Here the watcher stays started and
    its callback, run by the hub, accepts everything waiting (as gevent's
    ``StreamServer`` does) and hands each connection to ``on_accept``. The greenlet
    that called :meth:`run` sleeps meanwhile and wakes only when accepting must stop:
    ``on_accept`` said so, or accept failed (the error is handed back).

    Only for a plain blocking gevent listening socket (:func:`can_watch`).
    """

    def __init__(self, listener: Any, make: type[Any] = gsocket.socket) -> None:
        self._listener = listener
        self._make = make
        self._kind = (listener.family, listener.type, listener.proto)
        self._hub = get_hub()
        # The listener's own read watcher: when the listener is closed under us,
        # gevent cancels whoever waits on it by calling ``throw`` on the object its
        # callback is bound to (for a greenlet waiting, that greenlet): :meth:`throw`.
        self._watcher: Any = listener._read_event
        self._waiter: Any = None
        self._on_accept: Callable[[Any, Any], bool] | None = None
        # Connections taken per wake-up: 1 when other processes accept on the same
        # socket (ListeningPort.shares_listener), so that a burst is shared.
        self.max_per_wake = MAX_ACCEPTS_PER_WAKE

    def run(self, on_accept: Callable[[Any, Any], bool]) -> Exception | None:
        """Accept until ``on_accept(stream, address)`` returns false (gives ``None``)
        or accepting fails (gives the error). Blocks the calling greenlet."""
        waiter = self._waiter = Waiter(self._hub)
        self._on_accept = on_accept
        self._watcher.start(self._accept_ready)
        try:
            result: Exception | None = waiter.get()
            return result
        finally:
            self._watcher.stop()
            self._waiter = self._on_accept = None

    def close(self) -> None:
        """Stop watching (before the listener closes, which closes the watcher)."""
        self._watcher.stop()

    def throw(self, error: BaseException) -> None:
        """Called by gevent's hub when the listener was closed while watched."""
        self._finish(error if isinstance(error, Exception) else OSError(EBADF, str(error)))

    def _accept_ready(self) -> None:
        listener = self._listener
        make = self._make
        family, kind, proto = self._kind
        on_accept = self._on_accept
        for _ in range(self.max_per_wake):
            try:
                # listener._sock each time, as in _raw_accept.
                fd, address = listener._sock._accept()
            except BlockingIOError:
                return
            except Exception as exc:
                self._finish(exc)
                return
            try:
                stream = make(family, kind, proto, fd)
            except BaseException as exc:
                close_unwrapped(fd, exc)
                if not isinstance(exc, Exception):
                    raise
                self._finish(exc)
                return
            try:
                go_on = on_accept is not None and on_accept(stream, address)
            except Exception as exc:  # on_accept closed the stream
                self._finish(exc)
                return
            if not go_on:
                self._finish(None)
                return

    def _finish(self, result: Exception | None) -> None:
        # In the hub: stop taking connections and wake the greenlet in run().
        self._watcher.stop()
        waiter = self._waiter
        if waiter is not None:
            waiter.switch(result)


def can_watch(listener: Any) -> bool:
    """Whether :class:`AcceptWatcher` can accept from ``listener``."""
    return type(listener) is gsocket.socket and listener.timeout is None
