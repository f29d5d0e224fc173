"""TCP over IPv4 and IPv6: the client and server endpoint classes.

Their ``tcp``/``tcp4``/``tcp6`` descriptions are parsed in ``greenpoint.endpoints.tcp``.

Client endpoints connect to an IP literal directly (no resolver involved) or resolve a
host name for their one family only and race its addresses (happy eyeballs restricted to
that family, ``greenpoint._happy_eyeballs``) within one deadline. ``tcp:`` with a host
name builds a ``HostnameEndpoint``, which races both families; ``tcp4:`` and ``tcp6:``
pin one.

Server endpoints bind a gevent socket with ``SO_REUSEADDR`` (and optionally
``SO_REUSEPORT``) and return it as the listener. ``TCP6ServerEndpoint`` sets
``IPV6_V6ONLY`` explicitly, dual-stack by default, so behaviour does not depend on the
operating system's ``bindv6only`` default.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import socket as _stdsocket
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from gevent import socket as gsocket

from greenpoint._address import IPv4Address, IPv6Address
from greenpoint._checks import (
    FieldError,
    FieldTypeError,
    check_backlog,
    check_timeout,
    port,
    seconds,
)
from greenpoint._defaults import DEFAULT_BACKLOG, DEFAULT_TIMEOUT
from greenpoint._happy_eyeballs import connect_literal, open_tcp_connection
from greenpoint._hostnames import (
    ANY_ADDRESS,
    BindAddress,
    IPLiteral,
    encode_hostname,
    literal_family,
    split_ip_literal,
    wrong_family,
)
from greenpoint._socket import set_nodelay
from greenpoint._sockopts import (
    SocketOptionsHook,
    TCPOptions,
    check_socket_fields,
    configured_connect,
    socket_configurer,
)
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import ConnectError, ListenError

__all__ = [
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "literal_family",
]

AF_INET = _stdsocket.AF_INET
AF_INET6 = _stdsocket.AF_INET6


# -- pure helpers ----------------------------------------------------------------


def _sockaddr(family: int, host: str, port: int) -> tuple[Any, ...]:
    """The sockaddr for an IP literal (or ``""``, any address) of ``family``.

    Raises:
        ValueError: for a zone naming an interface that does not exist.
    """
    literal = split_ip_literal(host)
    return (ANY_ADDRESS[family], port) if literal is None else literal.sockaddr(port)


def _check_literal(field: str, value: str, family: int, owner: str) -> None:
    """``value`` must be empty or an IP literal of ``family``."""
    if not isinstance(value, str):
        raise FieldTypeError(field, f"{field} must be a str, not {type(value).__name__}")
    if not value:
        return
    found = literal_family(value)
    if found is None:
        raise FieldError(field, f"{field} must be an IP address, not {value!r}")
    if found != family:
        raise wrong_family(field, value, family, owner)


def _check_name(host: str) -> None:
    """Refuse, now, a host name that cannot be a DNS name (IDNA included)."""
    try:
        encode_hostname(host)
    except ValueError as exc:
        raise FieldError("host", str(exc)) from None


def _check_socket_fields(endpoint: Any) -> None:
    """Check ``nodelay``, ``tcp_options`` and the ``socket_options`` hook of ``endpoint``."""
    hook = check_socket_fields(endpoint.nodelay, endpoint.tcp_options, endpoint.socket_options)
    object.__setattr__(endpoint, "socket_options", hook)


# -- connecting ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _TCPClientEndpoint(ClientEndpoint):
    """Shared by the IPv4 and IPv6 client endpoints; ``family`` tells them apart.

    ``resolver`` (keyword only; ``getaddrinfo``'s signature, called with ``family=``)
    resolves host names; ``None`` means gevent's resolver. It is a testing and
    embedding seam: not part of equality, ``repr`` or the description.

    ``nodelay`` (default on) sets ``TCP_NODELAY``; ``tcp_options`` (a
    :class:`~greenpoint.TCPOptions`: keep-alive, user timeout, device) is set before
    connecting; ``socket_options``, the escape hatch for any other option, is
    ``(level, option, value)`` triples or a ``callable(sock)`` run after them, and like
    ``resolver`` is not part of equality or the description.
    """

    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    bind_address: Any = None  # any form BindAddress.parse takes; held as a BindAddress
    resolver: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )
    nodelay: bool = dataclasses.field(default=True, kw_only=True)
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    family: ClassVar[int] = AF_INET
    _literal: ClassVar[IPLiteral | None] = None  # per instance, set by __post_init__

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_socket_fields(self)
        if not isinstance(self.host, str):
            raise FieldTypeError("host", f"host must be a str, not {type(self.host).__name__}")
        if not self.host:
            raise FieldError("host", "host must be a host name or IP address, not ''")
        literal = split_ip_literal(self.host)
        if literal is not None:
            object.__setattr__(self, "host", literal.text)  # "[::1]" is "::1"
            _check_literal("host", self.host, self.family, owner)
        else:
            _check_name(self.host)
        # Known once: open() then skips parsing the host on every connect.
        object.__setattr__(self, "_literal", literal)
        port("port", self.port)
        seconds("timeout", self.timeout, allow_none=False, zero=False)
        # The host must be an IP literal (or "", any address): binding to a name would
        # block in the C library's resolver. Only this endpoint's family is kept.
        bind = BindAddress.parse(self.bind_address)
        object.__setattr__(self, "bind_address", bind and bind.only(self.family, owner))

    def open(self, timeout: float | None = None) -> Any:
        """Connect and return the connected gevent socket (``TCP_NODELAY`` on).

        Blocks only the calling greenlet, for at most ``timeout`` seconds (default:
        the endpoint's ``timeout``), resolution included. A host name is resolved for
        the endpoint's family only and its addresses are raced as RFC 8305 §5 says
        (a new attempt every 250 ms, or at once when one fails); the losers are closed.

        Raises:
            ConnectRefusedError, ConnectTimeoutError, DNSLookupError, ConnectError:
                naming the address.
        """
        check_timeout(timeout)
        limit = self.timeout if timeout is None else timeout
        family = self.family
        configure = socket_configurer(self.tcp_options, self.socket_options)
        if self._literal is not None:
            try:
                sockaddr = self._literal.sockaddr(self.port)
                bind = None if self.bind_address is None else self.bind_address.for_family(family)
            except ValueError as exc:  # a zone naming no interface
                raise ConnectError(
                    f"cannot connect to {self.host}: {exc}", address=self.host
                ) from exc
            # The same single attempt as open_tcp_connection's for a literal, so a
            # failure carries .attempts either way.
            return connect_literal(
                None,
                family,
                sockaddr,
                timeout=limit,
                bind_address=bind,
                connect=configured_connect(self.nodelay, configure),
            )
        sock, _info = open_tcp_connection(
            self.host,
            self.port,
            families=(family,),
            timeout=limit,
            bind_address=self.bind_address,
            resolver=self.resolver,
            connect=configured_connect(self.nodelay, configure),
        )
        return sock

    def description_values(self) -> Mapping[str, Any]:
        bind = self.bind_address
        values = {**super().description_values(), **self.tcp_options.description_values()}
        if bind is None:
            return {**values, "bind_address": None, "bind_port": 0}
        return {**values, "bind_address": bind.hosts_text, "bind_port": bind.port}


@dataclasses.dataclass(frozen=True)
class TCP4ClientEndpoint(_TCPClientEndpoint):
    """Connect over IPv4 to ``host`` (an IPv4 literal or a name resolved for IPv4 only).

    ``bind_address`` is a local IP address or ``(address, port)`` to connect from.
    """

    family: ClassVar[int] = AF_INET
    prefix: ClassVar[str] = "tcp4"


@dataclasses.dataclass(frozen=True)
class TCP6ClientEndpoint(_TCPClientEndpoint):
    """Connect over IPv6 to ``host`` (an IPv6 literal, zone allowed, or a name resolved
    for IPv6 only).

    ``bind_address`` is a local IP address or ``(address, port)`` to connect from.
    """

    family: ClassVar[int] = AF_INET6
    prefix: ClassVar[str] = "tcp6"


# -- listening -------------------------------------------------------------------


def _listen(
    family: int,
    interface: str,
    port_number: int,
    backlog: int,
    reuse_port: bool,
    ipv6only: bool | None,
    nodelay: bool = True,
    configure: Callable[[Any], None] | None = None,
) -> Any:
    """Bind and listen a gevent TCP socket; closed again on any failure.

    ``configure`` sets socket options on the listener before it binds; accepted
    connections inherit them (see ``greenpoint._sockopts``).
    """
    literal = split_ip_literal(interface)
    shown = (IPv4Address if family == AF_INET else IPv6Address)(
        ANY_ADDRESS[family] if literal is None else literal.address, port_number
    )
    try:
        sockaddr = _sockaddr(family, interface, port_number)
    except ValueError as exc:  # a zone naming no interface
        raise _listen_error(shown, str(exc), _errno.ENODEV) from exc
    sock = gsocket.socket(family, _stdsocket.SOCK_STREAM)
    try:
        # A restarted server must not wait for TIME_WAIT connections of its
        # predecessor (what every server does; gevent's StreamServer too).
        sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
        if reuse_port:
            # socket(7): every socket bound to the port must set it, and the kernel
            # spreads incoming connections across them.
            sock.setsockopt(_stdsocket.SOL_SOCKET, _reuse_port_option(), 1)
        if ipv6only is not None:
            sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, int(ipv6only))
        if nodelay:
            # Accepted sockets inherit TCP_NODELAY from the listener (Linux, the
            # BSDs), so no connection pays a setsockopt for it.
            set_nodelay(sock)
        if configure is not None:
            configure(sock)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _listen_error(shown, exc.strerror or str(exc), exc.errno) from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _listen_error(shown: Any, reason: str, errno: int | None) -> ListenError:
    error = ListenError(errno, f"cannot listen on {shown}: {reason}")
    # ListenError declares no ``address``; callers read it where it is set.
    vars(error)["address"] = shown
    return error


def _reuse_port_option() -> int:
    option: int | None = getattr(_stdsocket, "SO_REUSEPORT", None)
    if option is None:
        raise OSError("SO_REUSEPORT is not available on this platform")
    return option


class _TCPServerEndpoint(ServerEndpoint):
    """Shared by the IPv4 and IPv6 server endpoints; ``family`` tells them apart."""

    # Declared for the type checker; the dataclass subclasses define the fields.
    port: int
    backlog: int
    interface: str
    reuse_port: bool
    nodelay: bool
    tcp_options: TCPOptions
    socket_options: SocketOptionsHook

    family: ClassVar[int] = AF_INET

    def __post_init__(self) -> None:
        port("port", self.port, zero=True)
        check_backlog(self.backlog)
        _check_literal("interface", self.interface, self.family, type(self).__name__)
        _check_socket_fields(self)

    def _ipv6only(self) -> bool | None:
        return None  # IPV6_V6ONLY is left alone

    def bind(self) -> Any:
        """Bind and listen; return the listening gevent socket.

        Raises:
            ListenError: naming the address and the OS error (e.g. EADDRINUSE).
        """
        return _listen(
            self.family,
            self.interface,
            self.port,
            self.backlog,
            self.reuse_port,
            self._ipv6only(),
            self.nodelay,
            socket_configurer(self.tcp_options, self.socket_options),
        )

    def description_values(self) -> Mapping[str, Any]:
        return {**super().description_values(), **self.tcp_options.description_values()}


@dataclasses.dataclass(frozen=True)
class TCP4ServerEndpoint(_TCPServerEndpoint):
    """Listen for TCP over IPv4 on ``port`` (0: any free port) at ``interface``.

    ``interface`` ``""`` means every IPv4 address (Twisted's default). ``reuse_port``
    sets ``SO_REUSEPORT`` so that several processes can listen on the same port.
    ``nodelay`` (default on) sets ``TCP_NODELAY`` on every accepted connection.
    ``tcp_options`` and the ``socket_options`` hook (as on the client endpoints) are
    set on the listener before it binds; Linux gives accepted connections the same.
    """

    port: int
    backlog: int = DEFAULT_BACKLOG
    interface: str = ""
    reuse_port: bool = False
    nodelay: bool = True
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    family: ClassVar[int] = AF_INET
    prefix: ClassVar[str] = "tcp4"


@dataclasses.dataclass(frozen=True)
class TCP6ServerEndpoint(_TCPServerEndpoint):
    """Listen for TCP over IPv6 on ``port`` (0: any free port) at ``interface``.

    ``ipv6only=False`` (the default) makes the socket dual-stack: IPv4 clients are
    accepted too and handlers see them as :class:`~greenpoint.IPv4Address`. It is set
    explicitly, so the result is the same whatever the OS default (``bindv6only`` on
    Linux, always v6-only on Windows and OpenBSD). It was chosen because ``"::"`` reads
    as "everywhere" and Twisted's ``tcp6:`` is dual-stack on a default Linux.
    """

    port: int
    backlog: int = DEFAULT_BACKLOG
    interface: str = "::"
    ipv6only: bool = False
    reuse_port: bool = False
    nodelay: bool = True
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    family: ClassVar[int] = AF_INET6
    prefix: ClassVar[str] = "tcp6"

    def _ipv6only(self) -> bool | None:
        return bool(self.ipv6only)
