"""A gevent socket that remembers when it last moved a byte: ``idle_timeout`` off TCP.

TCP sockets need nothing of the kind: the kernel keeps the time of the last data
segment each way (``TCP_INFO``). UNIX sockets keep no such time, so on a port with
``idle_timeout`` an accepted UNIX socket is re-made as a :class:`StampedSocket`,
whose reads and writes note the (monotonic) time when they moved data. That is one
clock read per call, paid only on such ports.
"""

from __future__ import annotations

import time
from typing import Any

from gevent import socket as gsocket

from greenpoint._half_made import close_unwrapped

__all__ = ["StampedSocket", "stamped"]

_now = time.monotonic


class StampedSocket(gsocket.socket):  # type: ignore[misc]
    """A gevent socket whose ``last_io`` is when a read or write last moved data.

    Only calls that moved data stamp: a read that timed out or was interrupted
    leaves the connection as idle as it was.
    """

    __slots__ = ("last_io",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_io = _now()

    def recv(self, *args: Any) -> bytes:
        data: bytes = super().recv(*args)
        self.last_io = _now()
        return data

    def recv_into(self, *args: Any) -> int:
        count: int = super().recv_into(*args)
        self.last_io = _now()
        return count

    def send(self, *args: Any, **kwargs: Any) -> int:
        # gevent's sendall sends chunk by chunk through this method, so a long
        # sendall to a slow reader stamps as each chunk leaves.
        count: int = super().send(*args, **kwargs)
        self.last_io = _now()
        return count

    def try_send(self, data: Any) -> int:
        """Send without waiting (the transport's fast path); may raise BlockingIOError."""
        count: int = self._sock.send(data)
        self.last_io = _now()
        return count

    def idle_seconds(self) -> float:
        """Seconds since data last moved either way."""
        return _now() - self.last_io


def stamped(stream: Any) -> Any:
    """``stream`` re-made as a :class:`StampedSocket` if it is a plain gevent socket."""
    if type(stream) is not gsocket.socket:
        return stream
    fd = stream.detach()
    try:
        return StampedSocket(stream.family, stream.type, stream.proto, fileno=fd)
    except BaseException as exc:  # the descriptor is ours now: closed once, at once
        close_unwrapped(fd, exc)
        raise
