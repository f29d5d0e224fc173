"""Read a PROXY header off a connection, and the stream that reports its addresses.

:func:`read_proxy_header` is the I/O half of :mod:`greenpoint._proxy_header`. On a
real socket it peeks (``MSG_PEEK``, as §9 of the specification suggests) and then
consumes exactly the header, so the application's first bytes stay in the kernel
and a TLS layer that reads the file descriptor directly still sees them. On any
other stream it reads normally and the bytes past the header are replayed by
:class:`ProxiedStream`.
"""

from __future__ import annotations

import socket as _stdsocket
from typing import Any, Protocol, cast

import gevent
from gevent import socket as gsocket

from greenpoint._address import Address, IPv4Address, IPv6Address, UNIXAddress, host_address
from greenpoint._proxy_header import (
    DEFAULT_MAX_SIZE,
    ProxyHeader,
    ProxyHeaderParser,
    header_size,
    parse_header,
)
from greenpoint._socket_file import layer_file, raw_file_mode
from greenpoint.errors import ProxyHeaderError

__all__ = ["ProxiedStream", "read_proxy_header"]

_READ_SIZE = 4096


def read_proxy_header(
    stream: Any,
    timeout: float | None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[ProxyHeader, bytes]:
    """Read the PROXY header at the start of ``stream``; return it and any bytes
    read past it (always ``b""`` on a real socket).

    Blocks only the calling greenlet, for at most ``timeout`` seconds in total
    however the header is split (``None``: no limit).

    Raises:
        ProxyHeaderError: malformed or too long, the deadline passed, or the
            connection closed or failed before the header was complete.
    """
    deadline = gevent.Timeout(timeout) if timeout is not None else None
    if deadline is not None:
        deadline.start()
    try:
        if isinstance(stream, gsocket.socket | _stdsocket.socket):
            return _read_exactly_the_header(stream, max_size)
        return _read_and_keep_the_rest(stream, max_size)
    except gevent.Timeout as exc:
        if exc is not deadline:
            raise  # someone else's deadline
        # Caused by a TimeoutError, so the serve loop counts it as a handshake timeout.
        raise ProxyHeaderError(f"no complete PROXY header within {timeout:g} s") from TimeoutError(
            "timed out"
        )
    except _Closed as exc:
        raise ProxyHeaderError(
            f"connection closed after {exc.received} bytes, before the PROXY header was complete"
        ) from None
    except OSError as exc:
        raise ProxyHeaderError(f"connection failed while reading the PROXY header: {exc}") from exc
    finally:
        if deadline is not None:
            deadline.close()


class _Closed(Exception):
    def __init__(self, received: int) -> None:
        self.received = received


def _read_exactly_the_header(sock: Any, max_size: int) -> tuple[ProxyHeader, bytes]:
    consumed = bytearray()
    while True:
        # Look without taking; one byte more than allowed is enough to see "too long".
        peeked = sock.recv(max_size + 1 - len(consumed), _stdsocket.MSG_PEEK)
        if not peeked:
            raise _Closed(len(consumed))
        size = header_size(consumed + peeked, max_size)
        # Incomplete: everything seen so far is header, so take all of it.
        wanted = len(peeked) if size is None else size - len(consumed)
        while wanted:
            chunk = sock.recv(wanted)
            if not chunk:
                raise _Closed(len(consumed))
            consumed += chunk
            wanted -= len(chunk)
        if size is not None:
            header, rest = parse_header(consumed, max_size)
            return header, rest


def _read_and_keep_the_rest(stream: Any, max_size: int) -> tuple[ProxyHeader, bytes]:
    parser = ProxyHeaderParser(max_size)
    received = 0
    while True:
        data = stream.recv(_READ_SIZE)
        if not data:
            raise _Closed(received)
        received += len(data)
        header = parser.feed(data)
        if header is not None:
            return header, parser.rest


class _Connection(Protocol):
    """What ProxiedStream calls on the connection under it (a gevent socket, mostly)."""

    def recv(self, bufsize: int, flags: int = ..., /) -> bytes: ...
    def recv_into(self, buffer: Any, nbytes: int = ..., flags: int = ..., /) -> int: ...
    def send(self, data: Any, flags: int = ..., /) -> int: ...
    def sendall(self, data: Any, flags: int = ..., /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


# A PROXY header carries IP or UNIX addresses, and the connection's own are those too.
_SocketAddress = IPv4Address | IPv6Address | UNIXAddress


class ProxiedStream:
    """A connected stream whose addresses are the ones the PROXY header gave.

    Socket-like: ``recv``/``recv_into`` first return any bytes read past the
    header; ``getpeername()``/``getPeer()`` are the original client and
    ``getsockname()``/``getHost()`` the address it connected to (the connection's
    own addresses for ``LOCAL``/``UNKNOWN`` headers). ``proxy_header`` is the
    parsed header (TLVs included) and ``proxy_address`` the proxy's own address.
    Everything else (``family``, ``setsockopt``, ``fileno``...) is the underlying
    connection's.
    """

    def __init__(
        self, stream: Any, header: ProxyHeader, proxy_address: Address, rest: bytes = b""
    ) -> None:
        self._stream: _Connection = stream
        self._pending = rest
        self.proxy_header = header
        self.proxy_address = proxy_address
        self._peer = header.source if header.source is not None else proxy_address
        self._host = header.destination if header.destination is not None else host_address(stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<ProxiedStream peer={self._peer} host={self._host} via {self.proxy_address}>"

    def __enter__(self) -> ProxiedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Addresses --------------------------------------------------------------------

    def getPeer(self) -> Address:  # noqa: N802 - what greenpoint._address.peer_address asks
        return self._peer

    def getHost(self) -> Address:  # noqa: N802
        return self._host

    def getpeername(self) -> Any:
        return cast(_SocketAddress, self._peer).sockaddr()

    def getsockname(self) -> Any:
        return cast(_SocketAddress, self._host).sockaddr()

    # Reading: replay what was read past the header first ----------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._pending:
            return self._stream.recv(bufsize, flags) if flags else self._stream.recv(bufsize)
        data = self._pending[:bufsize]
        if not flags & _stdsocket.MSG_PEEK:
            self._pending = self._pending[len(data) :]
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if not self._pending:
            if flags:
                return self._stream.recv_into(buffer, nbytes, flags)
            return (
                self._stream.recv_into(buffer, nbytes) if nbytes else self._stream.recv_into(buffer)
            )
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def pending(self) -> int:
        """How many bytes read past the header are still waiting to be returned."""
        return len(self._pending)

    def direct_socket(self) -> Any:
        """The socket underneath, for a layer that reads the descriptor itself
        (TLS); ``None`` while bytes read past the header are waiting here, or
        when the underlying stream is not a socket."""
        if self._pending or not isinstance(self._stream, gsocket.socket | _stdsocket.socket):
            return None
        return self._stream

    # Writing, closing ---------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        return self._stream.send(data, flags) if flags else self._stream.send(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if flags:
            self._stream.sendall(data, flags)
        else:
            self._stream.sendall(data)

    def shutdown(self, how: int) -> None:
        self._stream.shutdown(how)

    def close(self) -> None:
        self._pending = b""
        self._stream.close()

    def _decref_socketios(self) -> None:
        """Called by a file from :meth:`makefile` when it closes; the stream stays open."""

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """A file object over this stream (reads replay the bytes past the header)."""
        # SocketIO needs only recv_into, send and _decref_socketios (see _socket_file).
        raw = _stdsocket.SocketIO(cast(_stdsocket.socket, self), raw_file_mode(mode))
        return layer_file(raw, mode, buffering, encoding, errors, newline)
