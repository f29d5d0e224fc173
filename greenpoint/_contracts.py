"""The stream and listener contracts, as ``typing.Protocol`` classes.

What ``open()`` returns and a serve handler gets is a *stream*: a connected gevent
socket, a :class:`~greenpoint.tls.TLSStream`, a PROXY-protocol stream, a pipe or a
child process's stdio. They share no base class (a gevent socket cannot have one);
they share these methods, which is all greenpoint's own code relies on. What
``bind()`` returns is a *listener*: a listening gevent socket, or a wrapper that
does the TLS handshake or reads the PROXY header.

Type-check against these rather than a concrete class; ``isinstance(x, Stream)``
works at run time too (it checks that the methods exist, not their signatures).
The socket-only methods (``fileno``, ``settimeout``, ``setsockopt``, ``makefile``)
are left out: not every stream has all of them (a PROXY stream over a pipe has no
descriptor of its own), so code that needs them says so with its own type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Union, runtime_checkable

from greenpoint._address import Address

__all__ = ["Bytes", "Handler", "Listener", "PreparingListener", "Stream"]

# What the write methods take, as socket.send does (collections.abc.Buffer is 3.12+).
Bytes = Union[bytes, bytearray, memoryview]


@runtime_checkable
class Stream(Protocol):
    """A connected, socket-like byte stream; every call blocks only its greenlet."""

    def recv(self, bufsize: int, /) -> bytes:
        """Up to ``bufsize`` bytes; ``b""`` once the peer has finished sending."""
        ...

    def recv_into(self, buffer: Any, nbytes: int = 0, /) -> int:
        """Read into ``buffer``; the number of bytes read, 0 at the end."""
        ...

    def send(self, data: Bytes, /) -> int:
        """Send some of ``data``; the number of bytes sent."""
        ...

    def sendall(self, data: Bytes, /) -> None:
        """Send all of ``data``."""
        ...

    def shutdown(self, how: int, /) -> None:
        """Half-close (``socket.SHUT_WR``: the peer reads the end of the stream)."""
        ...

    def close(self) -> None:
        """Close the stream; closing twice does nothing."""
        ...

    def getpeername(self) -> Any:
        """The peer's address, as the transport underneath gives it."""
        ...

    def getsockname(self) -> Any:
        """The local address, as the transport underneath gives it."""
        ...

    def __enter__(self) -> Stream: ...

    def __exit__(self, *exc_info: object) -> object: ...


@runtime_checkable
class Listener(Protocol):
    """What ``ServerEndpoint.bind()`` returns: a bound, listening source of streams."""

    def accept(self) -> tuple[Stream, Any]:
        """Block until a client connects; its ready stream and its address."""
        ...

    def close(self) -> None:
        """Stop listening; streams already accepted stay open."""
        ...

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        ...

    def getsockname(self) -> Any:
        """The bound address (with the port the kernel chose for port 0)."""
        ...


@runtime_checkable
class PreparingListener(Listener, Protocol):
    """A listener whose per-connection set-up (a TLS handshake, a PROXY header) is split out.

    The serve loop accepts with :meth:`accept_unprepared` and runs :meth:`prepare` in
    the connection's own greenlet, so one slow client never holds up the accept loop.
    """

    def accept_unprepared(self) -> tuple[Stream, Any]:
        """Accept a connection without its set-up."""
        ...

    def prepare(self, stream: Any, address: Any, /) -> tuple[Stream, Any]:
        """Run the set-up; the returned stream owns (and closes) the accepted one."""
        ...


# A serve() handler: called in its own greenlet with each connection's stream and
# the peer's greenpoint address; the stream is closed for it when it returns.
Handler = Callable[[Stream, Address], object]
