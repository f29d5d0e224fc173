"""The gevent socket a ``serve()`` handler gets for a plain TCP or UNIX connection.

It *is* a gevent socket (a subclass: every method, attribute and timeout behaves as
gevent's), with two of gevent's per-call costs taken out of the calls a handler
makes most:

* ``recv``/``recv_into`` after a read that returned less than asked (the socket was
  emptied, as in every request/response exchange) wait until the socket is readable
  *before* reading, as uvloop does, instead of reading, failing with ``EAGAIN`` (a
  system call and an exception) and then waiting. After a read that filled the
  buffer they read again at once, as gevent does; the first read tries at once too.
* ``sendall`` first offers all of the data to the kernel in one ``send``; only what
  did not fit goes through gevent's ``sendall``, which asks ``SO_SNDBUF`` (a system
  call) on every call to size its chunks.

One slot per socket (no ``__dict__``), so an idle connection holds 8 bytes more.
"""

from __future__ import annotations

from errno import EAGAIN
from typing import Any

from gevent import socket as gsocket

__all__ = ["ServedSocket"]

_BUFFER_TYPES = (bytes, bytearray)


class ServedSocket(gsocket.socket):  # type: ignore[misc]  # gevent's class is untyped
    """A gevent socket whose reads wait first once a read emptied it; see the module."""

    __slots__ = ("_emptied",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._emptied = False  # the last read returned less than asked

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:  # MSG_PEEK and the like: gevent's way, state untouched
            peeked: bytes = super().recv(bufsize, flags)
            return peeked
        if self._emptied:
            self._wait_readable()
        try:
            data: bytes = self._sock.recv(bufsize)
        except BlockingIOError:  # nothing there yet: wait, then gevent's loop
            self._wait_after_eagain()
            data = super().recv(bufsize)
        self._emptied = 0 < len(data) < bufsize
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            peeked: int = super().recv_into(buffer, nbytes, flags)
            return peeked
        if self._emptied:
            self._wait_readable()
        try:
            count: int = self._sock.recv_into(buffer, nbytes)
        except BlockingIOError:
            self._wait_after_eagain()
            count = super().recv_into(buffer, nbytes)
        self._emptied = 0 < count < (nbytes or memoryview(buffer).nbytes)
        return count

    def _wait_after_eagain(self) -> None:
        if self.timeout == 0.0:  # a non-blocking socket's read fails at once
            raise BlockingIOError(EAGAIN, "Resource temporarily unavailable")
        self._wait(self._read_event)

    def _wait_readable(self) -> None:
        # Level-triggered: a socket that got data since the last read is readable at
        # once, so waiting first never misses any. Not on a non-blocking socket (its
        # recv must fail rather than wait) nor a closed one (its recv says EBADF).
        event = self._read_event
        if event is not None and self.timeout != 0.0:
            self._wait(event)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if type(data) in _BUFFER_TYPES and data:
            try:
                sent = self._sock.send(data, flags)
            except BlockingIOError:
                sent = 0  # the kernel's buffer is full: gevent's loop waits for room
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        super().sendall(data, flags)
