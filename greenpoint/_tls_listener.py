"""A listener that hands out TLS streams: the handshake runs in the connection's greenlet.

``accept_unprepared()`` only accepts; ``prepare()`` does the handshake (bounded by
the handshake timeout) and is what the serve loop runs in each connection's own
greenlet, so a client that connects and sends nothing holds up nobody.
``accept()`` does both in turn, for code that accepts in a loop itself.
"""

from __future__ import annotations

from typing import Any

from greenpoint._address import as_address
from greenpoint._wrapping_listener import WrappingListener

__all__ = ["TLSListener"]


class TLSListener(WrappingListener):
    """Wraps a listener: every accepted stream is a handshaken :class:`TLSStream`."""

    def __init__(
        self, inner: Any, options: Any, handshake_timeout: float | None, nodelay: bool = True
    ) -> None:
        super().__init__(inner)
        self.options = options
        self.handshake_timeout = handshake_timeout
        # nodelay=0 on the TCP underneath: the handshake must not turn TCP_NODELAY on.
        self._handshake_keywords = {} if nodelay else {"nodelay": False}

    def prepare(self, stream: Any, address: Any) -> tuple[Any, Any]:
        """Finish what the inner listener needs, then the TLS handshake.

        Blocks the calling greenlet for at most the handshake timeout. The stream
        is closed on failure.

        Raises:
            TLSError, ConnectTimeoutError: naming the peer.
        """
        if self._inner_prepare is not None:  # no call at all over a plain socket
            stream, address = self._prepare_inner(stream, address)
        peer = as_address(None, address, stream)  # for error messages
        tls_stream = self.options.handshake(
            stream, self.handshake_timeout, address=peer, **self._handshake_keywords
        )
        return tls_stream, address
