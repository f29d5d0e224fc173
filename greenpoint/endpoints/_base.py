"""What every endpoint has: the I/O entry points and a description round-trip.

Endpoints are configuration objects (dataclasses in the transport modules). Making
one does no I/O. A client endpoint implements ``open(timeout)``; ``connect(factory)``
comes from here and runs the protocol layer over the opened stream. A server endpoint
implements ``bind()``; ``serve(handler)`` and ``listen(factory)`` come from here.

Listener protocol (what ``bind()`` returns and the serve loop relies on; typed as
``greenpoint.Listener`` and ``greenpoint.PreparingListener``):

* ``accept() -> (stream, address)`` — a ready stream (TLS handshake done, PROXY header
  read); ``close()``, ``fileno()``, ``getsockname()``. A gevent socket qualifies (its
  ``address`` is then a raw sockaddr, which the serve loop converts).
* optional ``accept_unprepared() -> (stream, address)`` and
  ``prepare(stream, address) -> (stream, address)``: the serve loop accepts with the
  first and runs the second in the connection's own greenlet, so that a slow TLS
  handshake or PROXY header never holds up the accept loop. ``prepare`` gets a
  greenpoint address and returns one; the stream it returns owns the accepted one
  (closing it closes that), so the serve loop closes only the returned stream.
* optional ``get_host() -> Address`` for the bound address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from greenpoint._description import format_description
from greenpoint._params import describe

if TYPE_CHECKING:
    from greenpoint._contracts import Listener, Stream
    from greenpoint._serve import ListeningPort

__all__ = ["ClientEndpoint", "ServerEndpoint"]

_connect_module: Any = None


def _protocol_layer() -> Any:
    """``greenpoint._connect``, which imports the endpoints (so not at module level).

    Kept once found: an ``import`` statement inside a function costs 3-5 µs per
    call on CPython 3.11, a measurable share of a connect to an IP literal.
    """
    global _connect_module
    if _connect_module is None:
        from greenpoint import _connect

        _connect_module = _connect
    return _connect_module


class _Describable:
    prefix: ClassVar[str] = ""
    _side: ClassVar[str] = ""  # "client" or "server": which table ``prefix`` is in

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """``(prefix, args, kwargs)`` for ``str(endpoint)``; only non-default keys.

        Written back from the built-in prefix's ``Param`` table
        (:func:`~greenpoint._params.describe`) with :meth:`description_values`, so
        each key and its default are declared once, where the parser reads them.
        """
        from greenpoint._registry import builtin_params

        args, kwargs = describe(builtin_params(self._side, self.prefix), self.description_values())
        return self.prefix, args, kwargs

    def description_values(self) -> Mapping[str, Any]:
        """The endpoint's values by ``Param`` keyword: by default its fields."""
        fields = dataclasses.fields(self)  # type: ignore[arg-type]  # endpoints are dataclasses
        return {field.name: getattr(self, field.name) for field in fields}

    def description_tail(self) -> str | None:
        """Raw text after the keys: a wrapped endpoint's whole description
        (``haproxy:timeout=2:tcp:8080``), or ``None``."""
        return None

    def __str__(self) -> str:
        prefix, args, kwargs = self.description_parts()
        return format_description(prefix, args, kwargs, self.description_tail())


class ClientEndpoint(_Describable):
    """Base of every client endpoint."""

    _side: ClassVar[str] = "client"

    def open(self, timeout: float | None = None) -> Stream:
        """Connect and return a connected stream; blocks only the calling greenlet.

        ``timeout`` (seconds) overrides the endpoint's own for this call and covers
        everything (resolution, racing, handshakes).
        """
        raise NotImplementedError

    def connect(self, factory: Any, timeout: float | None = None) -> Any:
        """Connect, build the factory's protocol, start it and return it.

        Blocks the calling greenlet until ``connectionMade`` has run.
        """
        return _protocol_layer().connect_factory(self, factory, timeout)


class ServerEndpoint(_Describable):
    """Base of every server endpoint."""

    _side: ClassVar[str] = "server"

    def bind(self) -> Listener:
        """Bind and listen; return a listener (see the module docstring)."""
        raise NotImplementedError

    def serve(
        self,
        handler: Any,
        pool: Any = None,
        *,
        max_connections: int | None = None,
        max_per_peer: int | None = None,
        idle_timeout: float | None = None,
    ) -> ListeningPort:
        """Bind and run ``handler(stream, address)`` in a greenlet per connection.

        Returns the already-bound :class:`~greenpoint.ListeningPort`. ``pool`` (a
        ``gevent.pool.Pool``) caps the number of concurrent handlers.

        Limits (all off by default; docs/limits.md): ``max_connections`` open at
        once (at the cap, accepting pauses and clients wait in the backlog);
        ``max_per_peer`` from one client address (the extra one is closed at once);
        ``idle_timeout`` seconds without a byte either way, after which a handler
        waiting on the stream gets :class:`~greenpoint.IdleTimeoutError`.

        Raises:
            ValueError: a limit that is not a positive number (before binding).
        """
        from greenpoint._limits import ConnectionLimits
        from greenpoint._serve import ListeningPort

        if not callable(handler):
            raise TypeError(
                f"handler must be callable as handler(stream, address), not {handler!r}"
            )
        limits = ConnectionLimits(max_connections, max_per_peer, idle_timeout)
        port = ListeningPort.start(self.bind(), handler, pool=pool, limits=limits)
        port.endpoint = self
        return port

    def listen(
        self,
        factory: Any,
        *,
        max_connections: int | None = None,
        max_per_peer: int | None = None,
        idle_timeout: float | None = None,
        dispatch: str | None = None,
    ) -> ListeningPort:
        """Bind and give each connection a protocol from ``factory``.

        Returns the already-bound :class:`~greenpoint.ListeningPort`. The limits are
        :meth:`serve`'s; a connection closed for idleness gets ``connectionLost``
        with an :class:`~greenpoint.IdleTimeoutError`. ``dispatch="greenlet"`` runs
        each connection in a greenlet of its own; ``"loop"`` runs the protocol
        callbacks of plain TCP and UNIX connections from the event loop, in one
        shared greenlet (docs/protocols.md, "Dispatch").
        """
        from greenpoint._connect import listen_factory
        from greenpoint._limits import ConnectionLimits

        limits = ConnectionLimits(max_connections, max_per_peer, idle_timeout)
        port: ListeningPort = listen_factory(self, factory, limits=limits, dispatch=dispatch)
        return port
