"""``HostnameEndpoint``: connect to a name over IPv6 and IPv4, whichever works first.

This is what ``tcp:example.com:80`` builds (a ``tcp:`` client description whose host
is a name; ``tcp4:``/``tcp6:`` pin one family and IP literals connect directly) and
what ``tls:`` connects with underneath. The race itself is in
``greenpoint._happy_eyeballs``; this module is the configuration object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from greenpoint._checks import check_timeout, hashable, port, seconds
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._happy_eyeballs import (
    ConnectInfo,
    LiteralRoute,
    connect_literal,
    literal_route,
    open_tcp_connection,
)
from greenpoint._hostnames import BindAddress, checked_host
from greenpoint._interleave import DEFAULT_ATTEMPT_DELAY
from greenpoint._sockopts import (
    SocketOptionsHook,
    TCPOptions,
    check_socket_fields,
    configured_connect,
    socket_configurer,
)
from greenpoint.endpoints._base import ClientEndpoint

__all__ = ["ConnectInfo", "HostnameEndpoint", "tcp_description_values"]


@dataclasses.dataclass(eq=True)
class HostnameEndpoint(ClientEndpoint):
    """A TCP client endpoint for a host name, raced over IPv6 and IPv4 (RFC 8305).

    ``open()`` resolves AAAA and A at once and connects to whichever address answers
    first, starting a new attempt every ``attempt_delay`` seconds (clamped to 10 ms
    .. 2 s) or as soon as one fails; the losers are closed. ``timeout`` (seconds,
    ``None`` for none) is one deadline for the lookups, the race, and a TLS handshake
    layered on top. ``bind_address`` is an IP address (bound only for its own family),
    ``(host, port)``, several addresses separated by commas, or
    ``{AF_INET: ..., AF_INET6: ...}``. ``resolver`` has ``socket.getaddrinfo``'s
    signature and is called once per family with ``family=``; ``None`` means gevent's
    resolver. ``clock`` and ``connector`` are the testing seams (see
    :mod:`greenpoint.testing`).

    Creating one does no I/O, but an invalid name or bind address is refused here.
    """

    prefix: ClassVar[str] = "tcp"

    host: str
    port: int
    timeout: float | None = DEFAULT_TIMEOUT
    bind_address: Any = None  # any form BindAddress.parse takes; held as a BindAddress
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY
    resolver: Callable[..., Any] | None = None
    clock: Any = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)
    connector: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )
    nodelay: bool = dataclasses.field(default=True, kw_only=True)
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    # Per instance, set by open(): ((host, port, bind_address), route) of the last
    # open, so that an IP literal is not parsed again on every connect. Keyed by
    # the fields it is made of: they are public and may be assigned after an open.
    _route: ClassVar[tuple[tuple[Any, ...], LiteralRoute | None] | None] = None

    def __post_init__(self) -> None:
        self.host = checked_host(self.host)
        port("port", self.port)
        seconds("timeout", self.timeout)
        seconds("attempt_delay", self.attempt_delay, allow_none=False)
        self.bind_address = BindAddress.parse(self.bind_address)
        self.socket_options = check_socket_fields(
            self.nodelay, self.tcp_options, self.socket_options
        )

    def description_values(self) -> Mapping[str, Any]:
        return tcp_description_values(self)

    def _connect(self) -> Callable[..., Any] | None:
        # The connector seam (tests) wins; otherwise one with the socket options.
        if self.connector is not None:
            return self.connector
        if self.nodelay and self.socket_options is None and not self.tcp_options:
            return None  # the default connect, which sets TCP_NODELAY
        configure = socket_configurer(self.tcp_options, self.socket_options)
        return configured_connect(self.nodelay, configure)

    def _literal_route(self, key: tuple[Any, ...]) -> LiteralRoute | None:
        """The route to the host, if an IP literal, for ``key``: (host, port, bind_address)."""
        route = literal_route(*key)
        # No IPv6 zone is remembered (its interface may come and go), nor a key
        # that could change in place (a list given as bind_address: unhashable).
        if (route is None or route.stable) and hashable(key):
            object.__setattr__(self, "_route", (key, route))  # per instance (see _route)
        return route

    def open(self, timeout: float | None = None) -> Any:
        """Connect and return the connected gevent socket.

        Blocks only the calling greenlet. ``timeout`` overrides the endpoint's own.
        See :meth:`open_with_info` for the errors, and to learn how it connected.
        """
        check_timeout(timeout)
        key = (self.host, self.port, self.bind_address)
        cached = self._route
        route = cached[1] if cached is not None and cached[0] == key else self._literal_route(key)
        if route is None:
            return self.open_with_info(timeout)[0]
        # An IP literal: the one attempt open_tcp_connection would make, without
        # the ConnectInfo that open() would throw away.
        return connect_literal(
            route.target,
            route.family,
            route.sockaddr,
            timeout=self.timeout if timeout is None else timeout,
            bind_address=route.bind,
            connect=self._connect(),
            clock=self.clock,
        )

    def open_with_info(self, timeout: float | None = None) -> tuple[Any, ConnectInfo]:
        """Connect; return ``(socket, info)``, ``info`` saying how it went.

        ``info`` (a :class:`ConnectInfo`) names the winning address and lists every
        lookup and attempt with its timing, for logging why a connect was slow. It is
        returned rather than stored, so concurrent opens never see each other's.

        Raises:
            DNSLookupError: no lookup gave an address (the resolver's message is kept).
            ConnectTimeoutError: the deadline passed first.
            ConnectRefusedError: every address refused.
            ConnectError: every address failed; ``.attempts`` lists each.
        """
        check_timeout(timeout)
        return open_tcp_connection(
            self.host,
            self.port,
            timeout=self.timeout if timeout is None else timeout,
            bind_address=self.bind_address,
            attempt_delay=self.attempt_delay,
            resolver=self.resolver,
            clock=self.clock,
            connect=self._connect(),
        )


def tcp_description_values(endpoint: Any) -> dict[str, Any]:
    """``endpoint``'s fields, socket options and bind address by ``tcp:`` keyword."""
    values = {**ClientEndpoint.description_values(endpoint)}
    values.update(endpoint.tcp_options.description_values())
    bind = endpoint.bind_address
    if bind is not None:
        values["bind_address"] = bind.hosts_text
        values["bind_port"] = bind.port
    return values
