"""A listener over another that finishes each connection in the connection's greenlet.

The TLS listener (a handshake) and the PROXY-protocol listener (a header) have one
shape, which lives here: an inner listener, its raw accept chosen once, the inner
listener's own ``prepare`` chained, an ``accept()`` for scripts that skips clients
who fail, and the listening socket's methods passed through. A subclass writes only
its ``prepare``: its own step, and where the inner listener's step goes relative to
it (:meth:`WrappingListener._prepare_inner`).

Wrappers nest either way round: ``haproxy:ssl:...`` reads the header, then
handshakes; a TLS listener over a PROXY one does the same, from the other side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from greenpoint._accept import accept_function
from greenpoint._address import Address, listener_address
from greenpoint.errors import GreenpointError, ProxyHeaderError

__all__ = ["WrappingListener", "log_prepare_failure"]

logger = logging.getLogger("greenpoint")

Prepare = Callable[[Any, Any], tuple[Any, Any]]
_Self = TypeVar("_Self", bound="WrappingListener")


def log_prepare_failure(address: Any, exc: Exception) -> None:
    """Log a connection that failed before its handler, once and at the right level."""
    if isinstance(exc, ProxyHeaderError):
        # haproxy: already logged it (a WARNING naming the proxy and the reason).
        logger.debug("connection from %s refused before the handler: %s", address, exc)
    elif isinstance(exc, GreenpointError | OSError):
        # One client's failure (a bad handshake, a reset): no traceback needed.
        logger.info("connection from %s failed before the handler: %r", address, exc)
    else:  # a bug in the listener's prepare()
        logger.error("preparing the connection from %s failed", address, exc_info=exc)


class WrappingListener:
    """The :class:`~greenpoint._contracts.PreparingListener` shape, over ``inner``.

    ``accept_unprepared()`` is the inner listener's cheap raw accept; ``prepare()``
    (a subclass's) runs in each connection's own greenlet; ``accept()`` does both
    in turn, for code that accepts in a loop itself.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # Chosen once, not per connection: the inner listener's own raw accept, or
        # the fast path for a plain gevent socket.
        self._accept_raw: Callable[[], tuple[Any, Any]] = getattr(
            inner, "accept_unprepared", None
        ) or accept_function(inner)
        self._inner_prepare: Prepare | None = getattr(inner, "prepare", None)

    def accept_unprepared(self) -> tuple[Any, Any]:
        """Accept the next raw connection, reading nothing from it."""
        return self._accept_raw()

    def prepare(self, stream: Any, address: Any) -> tuple[Any, Any]:
        """Finish the connection: ``(ready stream, client address)``.

        The ready stream owns (and closes) ``stream``; on failure ``stream`` is
        closed and the error raised. Blocks only the calling greenlet.
        """
        raise NotImplementedError

    def _prepare_inner(self, stream: Any, address: Any) -> tuple[Any, Any]:
        """The inner listener's own step (none for a socket); ``stream`` closed if it fails."""
        inner_prepare = self._inner_prepare
        if inner_prepare is None:
            return stream, address
        try:
            return inner_prepare(stream, address)
        except BaseException:
            stream.close()
            raise

    def accept(self) -> tuple[Any, Any]:
        """Accept and prepare the next connection that gets through: ``(stream, address)``.

        A client that fails (a bad handshake or header, a refused proxy, a reset) is
        logged as ``serve()`` logs it, closed and skipped. A slow client holds this
        call up to its timeout: servers should use ``serve()``, which prepares each
        connection in its own greenlet.
        """
        while True:
            stream, address = self.accept_unprepared()
            try:
                return self.prepare(stream, address)
            except (GreenpointError, OSError) as exc:
                stream.close()
                log_prepare_failure(address, exc)

    def close(self) -> None:
        self.inner.close()

    def fileno(self) -> int:
        fd: int = self.inner.fileno()
        return fd

    def getsockname(self) -> Any:
        return self.inner.getsockname()

    def get_host(self) -> Address:
        """The inner listener's bound address."""
        return listener_address(self.inner)

    getHost = get_host

    @property
    def family(self) -> int:
        """The inner listener's address family (``AttributeError`` if it has none)."""
        family: int = self.inner.family
        return family

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.inner!r}>"
