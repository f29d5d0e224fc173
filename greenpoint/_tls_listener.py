"""A listener that hands out TLS streams: the handshake runs in the connection's greenlet.

``accept_unprepared()`` only accepts; ``prepare()`` does the handshake (bounded by
the handshake timeout) and is what the serve loop runs in each connection's own
greenlet, so a client that connects and sends nothing holds up nobody.
``accept()`` does both in turn, for code that accepts in a loop itself.
"""

from __future__ import annotations

import logging
from typing import Any

from greenpoint._accept import accept_function
from greenpoint._address import from_sockaddr
from greenpoint.errors import ConnectError

__all__ = ["TLSListener"]

log = logging.getLogger("greenpoint.tls")


def _describe_peer(stream: Any, address: Any) -> Any:
    if isinstance(address, tuple | str | bytes):
        try:
            return from_sockaddr(stream.family, address)
        except (AttributeError, ValueError, IndexError, TypeError):
            return address
    return address


class TLSListener:
    """Wraps a listener: every accepted stream is a handshaken :class:`TLSStream`."""

    def __init__(
        self, inner: Any, options: Any, handshake_timeout: float | None, nodelay: bool = True
    ) -> None:
        self.inner = inner
        self.options = options
        self.handshake_timeout = handshake_timeout
        # nodelay=0 on the TCP underneath: the handshake must not turn TCP_NODELAY on.
        self._handshake_keywords = {} if nodelay else {"nodelay": False}
        # Chosen once, not per connection: the inner listener's own raw accept, or
        # the fast path for a plain gevent socket.
        self._accept_raw = getattr(inner, "accept_unprepared", None) or accept_function(inner)
        self._inner_prepare = getattr(inner, "prepare", None)

    def accept_unprepared(self) -> tuple[Any, Any]:
        """Accept a connection without reading from it (no handshake yet)."""
        return self._accept_raw()

    def prepare(self, stream: Any, address: Any) -> tuple[Any, Any]:
        """Finish what the inner listener needs, then the TLS handshake.

        Blocks the calling greenlet for at most the handshake timeout. The stream
        is closed on failure.

        Raises:
            TLSError, ConnectTimeoutError: naming the peer.
        """
        if self._inner_prepare is not None:
            stream, address = self._inner_prepare(stream, address)
        peer = _describe_peer(stream, address)
        tls_stream = self.options.handshake(
            stream, self.handshake_timeout, address=peer, **self._handshake_keywords
        )
        return tls_stream, address

    def accept(self) -> tuple[Any, Any]:
        """Accept and handshake; clients whose handshake fails are logged and skipped.

        A silent client holds this call up to the handshake timeout: servers
        should use ``serve()`` (or ``accept_unprepared`` + ``prepare`` per greenlet).
        """
        while True:
            stream, address = self.accept_unprepared()
            try:
                return self.prepare(stream, address)
            except ConnectError as exc:
                log.info("TLS client refused: %s", exc)

    def close(self) -> None:
        self.inner.close()

    def fileno(self) -> int:
        fd: int = self.inner.fileno()
        return fd

    def getsockname(self) -> Any:
        return self.inner.getsockname()

    def get_host(self) -> Any:
        get_host = getattr(self.inner, "get_host", None)
        if get_host is not None:
            return get_host()
        return from_sockaddr(self.inner.family, self.inner.getsockname())

    getHost = get_host

    @property
    def family(self) -> int:
        family: int = self.inner.family
        return family

    def __enter__(self) -> TLSListener:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TLSListener over {self.inner!r}>"
