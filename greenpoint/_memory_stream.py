"""An in-process connection: two socket-like streams joined by byte queues, no fds.

:func:`stream_pair` returns the two ends of one connection. Each end has what the
transport, the TLS memory-BIO stream and plain scripts use of a socket: ``recv``,
``send``/``sendall``/``try_send`` (never blocking: the queue has no limit, so there
is no back-pressure), ``shutdown``, ``close``, ``getPeer``/``getHost`` and
timeouts. Every wait blocks only the calling greenlet.

:class:`Faults` makes the connection misbehave as networks do:

* ``reset_after``: once that many bytes have crossed (both directions counted),
  the connection is reset: bytes already delivered can still be read, then both
  ends get ``ConnectionResetError`` (``ECONNRESET``) from ``recv`` and ``send``;
* ``delay``: every write reaches the peer that many seconds later (order kept);
* ``chunk``: a read returns at most that many bytes, so framing is exercised.

Refusing and black-holing happen before a connection exists; the endpoints in
:mod:`greenpoint.endpoints.memory` do those.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import itertools
import socket as _stdsocket
import time
from typing import Any

from gevent.event import Event

__all__ = ["Faults", "MemoryAddress", "MemoryStream", "stream_pair"]


@dataclasses.dataclass(frozen=True)
class MemoryAddress:
    """The address of one end of a ``memory:`` connection.

    ``name`` is the server's name; ``connection`` numbers the connections made to
    it (0 for the server's own, listening, address).
    """

    name: str
    connection: int = 0

    def __str__(self) -> str:
        suffix = f"#{self.connection}" if self.connection else ""
        return f"memory:{self.name}{suffix}"


@dataclasses.dataclass(frozen=True)
class Faults:
    """How a ``memory:`` connection misbehaves (see the module docstring)."""

    reset_after: int | None = None
    delay: float = 0.0
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.reset_after is not None and self.reset_after < 0:
            raise ValueError(f"reset_after must be 0 or more bytes, not {self.reset_after}")
        if not self.delay >= 0:  # also refuses NaN
            raise ValueError(f"delay must be 0 or more seconds, not {self.delay}")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk must be at least 1 byte, not {self.chunk}")


class _Direction:
    """Bytes on their way from one end to the other."""

    def __init__(self) -> None:
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.eof = False  # the sender shut down or closed
        self.reader_gone = False  # the receiver closed: sending is a broken pipe
        self.changed = Event()

    def wake(self) -> None:
        self.changed.set()


class _Link:
    """What both ends share: the faults and the byte count for ``reset_after``."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.crossed = 0
        self.reset = False
        self.directions = (_Direction(), _Direction())

    def do_reset(self) -> None:
        self.reset = True
        for direction in self.directions:
            direction.wake()


def _reset_error() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, "connection reset (memory: fault)")


class MemoryStream:
    """One end of an in-process connection; see :func:`stream_pair`."""

    family = _stdsocket.AF_UNSPEC
    type = _stdsocket.SOCK_STREAM
    proto = 0

    def __init__(
        self, link: _Link, incoming: _Direction, outgoing: _Direction, host: Any, peer: Any
    ) -> None:
        self._link = link
        self._in = incoming
        self._out = outgoing
        self._host = host
        self._peer = peer
        self._timeout: float | None = None
        self._write_shut = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<MemoryStream {self._host} -> {self._peer} {state}>"

    def __enter__(self) -> MemoryStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- addresses and options ------------------------------------------------------

    def getPeer(self) -> Any:  # noqa: N802 - what greenpoint._address.peer_address asks
        return self._peer

    def getHost(self) -> Any:  # noqa: N802
        return self._host

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    # -- reading --------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Return what the peer sent (at most ``bufsize`` bytes); ``b""`` at its end."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        incoming = self._in
        while True:
            self._check_open()
            if incoming.chunks:
                due, data = incoming.chunks[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    return self._take(bufsize)
            elif self._link.reset:
                raise _reset_error()
            elif incoming.eof:
                return b""
            else:
                wait = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    if self._timeout == 0:
                        raise BlockingIOError(errno.EAGAIN, "nothing to read yet")
                    raise TimeoutError("timed out")
                wait = left if wait is None else min(wait, left)
            incoming.changed.clear()
            incoming.changed.wait(wait)

    def _take(self, bufsize: int) -> bytes:
        chunks = self._in.chunks
        limit = bufsize
        if self._link.faults.chunk is not None:
            limit = min(limit, self._link.faults.chunk)
        due, data = chunks[0]
        if len(data) <= limit:
            chunks.popleft()
            return data
        chunks[0] = (due, data[limit:])
        return data[:limit]

    # -- writing --------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        """Queue ``data`` for the peer; never blocks. Returns ``len(data)``."""
        self._check_open()
        data = bytes(data)
        link = self._link
        if link.reset:
            raise _reset_error()
        if self._write_shut:
            raise BrokenPipeError(errno.EPIPE, "this end was shut down for writing")
        if self._out.reader_gone:
            raise BrokenPipeError(errno.EPIPE, "the peer closed the connection")
        reset_after = link.faults.reset_after
        passing = data
        if reset_after is not None:
            passing = data[: max(0, reset_after - link.crossed)]
        link.crossed += len(passing)
        if passing:
            self._out.chunks.append((time.monotonic() + link.faults.delay, passing))
            self._out.wake()
        if len(passing) < len(data):
            link.do_reset()
            raise _reset_error()
        return len(data)

    try_send = send
    sendall = send

    # -- closing --------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """``SHUT_WR``: the peer reads end-of-file after what was sent."""
        self._check_open()
        if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR) and not self._write_shut:
            self._write_shut = True
            self._out.eof = True
            self._out.wake()

    def close(self) -> None:
        """Close this end; the peer reads end-of-file, and its sends fail (EPIPE)."""
        if self.closed:
            return
        self.closed = True
        self._out.eof = True
        self._out.wake()
        self._in.reader_gone = True
        self._in.chunks.clear()
        self._in.wake()  # other greenlets reading this end get EBADF

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "the memory stream is closed")


_connections = itertools.count(1)


def stream_pair(name: str, faults: Faults = Faults()) -> tuple[MemoryStream, MemoryStream]:
    """The client and the server end of a new connection to ``name``."""
    link = _Link(faults)
    to_server, to_client = link.directions
    server_address = MemoryAddress(name)
    client_address = MemoryAddress(name, next(_connections))
    client = MemoryStream(link, to_client, to_server, client_address, server_address)
    server = MemoryStream(link, to_server, to_client, server_address, client_address)
    return client, server
