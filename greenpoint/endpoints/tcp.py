"""TCP over IPv4 and IPv6: client and server endpoints, and the ``tcp``/``tcp4``/``tcp6``
description prefixes.

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
import ipaddress
import socket as _stdsocket
from collections.abc import Callable
from typing import Any, ClassVar

from gevent import socket as gsocket

from greenpoint._address import IPv4Address, IPv6Address
from greenpoint._happy_eyeballs import open_tcp_connection
from greenpoint._hostnames import normalize_bind_address
from greenpoint._interleave import DEFAULT_ATTEMPT_DELAY
from greenpoint._params import Param, boolean, host, integer, ip_literal, number, port
from greenpoint._registry import EndpointParser
from greenpoint._socket import connect_address
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.endpoints.hostname import HostnameEndpoint
from greenpoint.errors import ConnectError, DescriptionError, ListenError

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "literal_family",
]

DEFAULT_TIMEOUT = 30.0  # seconds, Twisted's default for every client endpoint
DEFAULT_BACKLOG = 50  # Twisted's default

AF_INET = _stdsocket.AF_INET
AF_INET6 = _stdsocket.AF_INET6
_FAMILY_NAMES = {AF_INET: "IPv4", AF_INET6: "IPv6"}
_ANY_ADDRESS = {AF_INET: "0.0.0.0", AF_INET6: "::"}


class _FieldError(ValueError):
    """A bad constructor argument; ``field`` names it, so parsers can name the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- pure helpers ----------------------------------------------------------------


def literal_family(host: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` if ``host`` is an IP literal, else ``None`` (a name).

    An IPv6 literal may carry a zone (``fe80::1%eth0``); brackets are not accepted
    here (the description parser removes them).
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if "%" in host and address.version == 4:
        return None
    return AF_INET if address.version == 4 else AF_INET6


def _sockaddr(family: int, host: str, port: int) -> tuple:
    """The sockaddr for an IP literal (or ``""``, any address) of ``family``.

    Raises:
        OSError: for a zone naming an interface that does not exist.
    """
    if family == AF_INET6:
        address, _, zone = host.partition("%")
        scope_id = 0
        if zone:
            scope_id = int(zone) if zone.isdigit() else _stdsocket.if_nametoindex(zone)
        return (address or "::", port, 0, scope_id)
    return (host or "0.0.0.0", port)


def _check_port(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError("port", f"port must be an int, not {type(value).__name__}")
    if not minimum <= value <= 65535:
        raise _FieldError("port", f"port {value} is out of range ({minimum}-65535)")
    return value


def _check_literal(field: str, value: str, family: int, owner: str) -> None:
    """``value`` must be empty or an IP literal of ``family``."""
    if not isinstance(value, str):
        raise _FieldError(field, f"{field} must be a str, not {type(value).__name__}")
    if not value:
        return
    found = literal_family(value)
    if found is None:
        raise _FieldError(field, f"{field} must be an IP address, not {value!r}")
    if found != family:
        other = "TCP6" if family == AF_INET else "TCP4"
        raise _FieldError(
            field,
            f"{owner} is {_FAMILY_NAMES[family]}, but {field} {value!r} is an "
            f"{_FAMILY_NAMES[found]} address (use the {other} endpoint)",
        )


def _normalise_bind(value: Any, family: int, owner: str) -> tuple[str, int] | None:
    """``None``, a host, or ``(host, port)`` -> ``None`` or ``(host, port)``.

    The host must be an IP literal of the endpoint's family (or ``""``, any): binding
    to a name would block in the C library's resolver.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = (value, 0)
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise _FieldError(
            "bind_address", f"bind_address must be a host or (host, port), not {value!r}"
        )
    bind_host, bind_port = value
    _check_literal("bind_address", bind_host, family, owner)
    try:
        _check_port(bind_port, 0)
    except _FieldError as exc:
        raise _FieldError("bind_address", f"bind_address: {exc}") from None
    return (bind_host, bind_port)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


# -- connecting ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _TCPClientEndpoint(ClientEndpoint):
    """Shared by the IPv4 and IPv6 client endpoints; ``family`` tells them apart.

    ``resolver`` (keyword only; ``getaddrinfo``'s signature, called with ``family=``)
    resolves host names; ``None`` means gevent's resolver. It is a testing and
    embedding seam: not part of equality, ``repr`` or the description.
    """

    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    bind_address: Any = None
    resolver: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    family: ClassVar[int] = AF_INET

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.host, str) or not self.host:
            raise _FieldError("host", f"host must be a non-empty str, not {self.host!r}")
        found = literal_family(self.host)
        if found is not None:
            _check_literal("host", self.host, self.family, owner)
        _check_port(self.port, 1)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise _FieldError("timeout", f"timeout must be a number, not {self.timeout!r}")
        if not 0 < self.timeout < float("inf"):
            raise _FieldError("timeout", f"timeout must be positive and finite, not {self.timeout}")
        bind = _normalise_bind(self.bind_address, self.family, owner)
        object.__setattr__(self, "bind_address", bind)

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
        limit = self.timeout if timeout is None else timeout
        family = self.family
        bind = None
        try:
            if self.bind_address is not None:
                bind = _sockaddr(family, *self.bind_address)
            literal = literal_family(self.host) is not None
            sockaddr = _sockaddr(family, self.host, self.port) if literal else None
        except OSError as exc:  # a zone naming no interface
            raise ConnectError(f"cannot connect to {self.host}: {exc}", address=self.host) from exc
        if sockaddr is not None:
            return connect_address(family, sockaddr, timeout=limit, bind_address=bind)
        sock, _info = open_tcp_connection(
            self.host,
            self.port,
            families=(family,),
            timeout=limit,
            bind_address=self._bind_for_racer(),
            resolver=self.resolver,
        )
        return sock

    def _bind_for_racer(self) -> tuple[str, int] | None:
        # The racer takes an IP literal; "" (any address, a bind port alone) is
        # spelt out for the family.
        if self.bind_address is None:
            return None
        bind_host, bind_port = self.bind_address
        return (bind_host or _ANY_ADDRESS[self.family], bind_port)

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if self.timeout != DEFAULT_TIMEOUT:
            kwargs["timeout"] = _format_seconds(self.timeout)
        if self.bind_address is not None:
            bind_host, bind_port = self.bind_address
            kwargs["bindAddress"] = bind_host
            if bind_port:
                kwargs["bindPort"] = bind_port
        return (self.prefix, (self.host, self.port), kwargs)


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
) -> Any:
    """Bind and listen a gevent TCP socket; closed again on any failure."""
    shown = (IPv4Address if family == AF_INET else IPv6Address)(
        _sockaddr(family, interface.partition("%")[0], port_number)[0], port_number
    )
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
        sock.bind(_sockaddr(family, interface, port_number))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        error = ListenError(exc.errno, f"cannot listen on {shown}: {reason}")
        error.address = shown
        raise error from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _reuse_port_option() -> int:
    option = getattr(_stdsocket, "SO_REUSEPORT", None)
    if option is None:
        raise OSError("SO_REUSEPORT is not available on this platform")
    return option


def _check_backlog(backlog: Any) -> None:
    if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 0:
        raise _FieldError("backlog", f"backlog must be an int of 0 or more, not {backlog!r}")


@dataclasses.dataclass(frozen=True)
class TCP4ServerEndpoint(ServerEndpoint):
    """Listen for TCP over IPv4 on ``port`` (0: any free port) at ``interface``.

    ``interface`` ``""`` means every IPv4 address (Twisted's default). ``reuse_port``
    sets ``SO_REUSEPORT`` so that several processes can listen on the same port.
    """

    port: int
    backlog: int = DEFAULT_BACKLOG
    interface: str = ""
    reuse_port: bool = False

    prefix: ClassVar[str] = "tcp4"

    def __post_init__(self) -> None:
        _check_port(self.port, 0)
        _check_backlog(self.backlog)
        _check_literal("interface", self.interface, AF_INET, type(self).__name__)

    def bind(self) -> Any:
        """Bind and listen; return the listening gevent socket.

        Raises:
            ListenError: naming the address and the OS error (e.g. EADDRINUSE).
        """
        return _listen(AF_INET, self.interface, self.port, self.backlog, self.reuse_port, None)

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if self.backlog != DEFAULT_BACKLOG:
            kwargs["backlog"] = self.backlog
        if self.interface:
            kwargs["interface"] = self.interface
        if self.reuse_port:
            kwargs["reusePort"] = 1
        return (self.prefix, (self.port,), kwargs)


@dataclasses.dataclass(frozen=True)
class TCP6ServerEndpoint(ServerEndpoint):
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

    prefix: ClassVar[str] = "tcp6"

    def __post_init__(self) -> None:
        _check_port(self.port, 0)
        _check_backlog(self.backlog)
        _check_literal("interface", self.interface, AF_INET6, type(self).__name__)

    def bind(self) -> Any:
        """Bind and listen; return the listening gevent socket.

        Raises:
            ListenError: naming the address and the OS error (e.g. EADDRINUSE).
        """
        return _listen(
            AF_INET6,
            self.interface,
            self.port,
            self.backlog,
            self.reuse_port,
            bool(self.ipv6only),
        )

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if self.backlog != DEFAULT_BACKLOG:
            kwargs["backlog"] = self.backlog
        if self.interface != "::":
            kwargs["interface"] = self.interface
        if self.ipv6only:
            kwargs["ipv6only"] = 1
        if self.reuse_port:
            kwargs["reusePort"] = 1
        return (self.prefix, (self.port,), kwargs)


# -- descriptions ----------------------------------------------------------------

# Description keys for constructor fields, to name the key at fault.
_KEYS = {"bind_address": "bindAddress", "reuse_port": "reusePort"}


def _construct(prefix: str, cls: type, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        key = _KEYS.get(exc.field, exc.field)
        raise DescriptionError(f"{prefix}: bad {key}: {exc}", prefix=prefix, parameter=key) from exc


def _bind_pair(bind_address: str | None, bind_port: int) -> tuple[str, int] | None:
    if bind_address is None and not bind_port:
        return None
    return (bind_address or "", bind_port)


def _endpoint_for_name(
    host: str,
    port: int,
    timeout: float,
    bind_address: Any,
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY,
) -> ClientEndpoint:
    """The endpoint ``tcp:`` uses for a host name: happy eyeballs over both families."""
    return HostnameEndpoint(
        host, port, timeout=timeout, bind_address=bind_address, attempt_delay=attempt_delay
    )


def _bind_hosts(value: str) -> str:
    """One local IP literal, or one per family separated by a comma (``tcp:`` only)."""
    parts = [ip_literal(part) for part in value.split(",")]
    if len(parts) > 1 and not all(parts):
        raise ValueError(f"expected IP addresses separated by a comma, got {value!r}")
    return ",".join(parts)


def _bind_for_name(bind_address: str | None, bind_port: int) -> Any:
    """``bindAddress``/``bindPort`` as ``HostnameEndpoint`` takes them.

    Several hosts become one entry per family; a port alone binds the any-address of
    both families to it.
    """
    if bind_address is None and not bind_port:
        return None
    if not bind_address:
        return {family: (_ANY_ADDRESS[family], bind_port) for family in (AF_INET, AF_INET6)}
    try:
        normalised = normalize_bind_address(bind_address)
    except ValueError as exc:
        raise DescriptionError(
            f"tcp: bad bindAddress={bind_address!r}: {exc}", prefix="tcp", parameter="bindAddress"
        ) from exc
    if isinstance(normalised, dict):
        return {family: (ip, bind_port) for family, (ip, _) in normalised.items()}
    return (normalised[0], bind_port)


def _bind_for_literal(bind_address: str | None, family: int) -> str | None:
    """From ``a,b`` (one address per family), the one of the literal's ``family``."""
    if bind_address is None or "," not in bind_address:
        return bind_address
    try:
        normalised = normalize_bind_address(bind_address)
    except ValueError as exc:
        raise DescriptionError(
            f"tcp: bad bindAddress={bind_address!r}: {exc}", prefix="tcp", parameter="bindAddress"
        ) from exc
    if isinstance(normalised, dict):
        return normalised[family][0] if family in normalised else None
    return normalised[0]


def _client_params(race: bool = False) -> tuple[Param, ...]:
    params = (
        Param("host", host, positional=True, help="a host name or IP address"),
        Param("port", integer(1, 65535), positional=True, help="the port to connect to"),
        Param("timeout", number, default=DEFAULT_TIMEOUT, help="seconds, fractions allowed"),
    )
    if not race:
        return params + (
            Param("bindAddress", ip_literal, default=None, target="bind_address"),
            Param("bindPort", port, default=0, target="bind_port"),
        )
    return params + (
        Param(
            "bindAddress",
            _bind_hosts,
            default=None,
            target="bind_address",
            help="local IP address to connect from; for a host name, one per family: a,b",
        ),
        Param("bindPort", port, default=0, target="bind_port"),
        Param(
            "attemptDelay",
            number,
            default=DEFAULT_ATTEMPT_DELAY,
            target="attempt_delay",
            help="seconds before the next connection attempt (RFC 8305; clamped to 0.01–2)",
        ),
    )


def _build_tcp_client(
    host: str,
    port: int,
    timeout: float,
    bind_address: str | None,
    bind_port: int,
    attempt_delay: float,
):
    family = literal_family(host)
    if family is None:
        if timeout <= 0:  # what TCP4ClientEndpoint refuses for a literal
            raise DescriptionError(
                f"tcp: bad timeout={timeout!r}: must be more than 0 seconds",
                prefix="tcp",
                parameter="timeout",
            )
        bind = _bind_for_name(bind_address, bind_port)
        return _endpoint_for_name(host, port, timeout, bind, attempt_delay)
    # An IP literal: one address, nothing to race, so attemptDelay has no effect.
    bind = _bind_pair(_bind_for_literal(bind_address, family), bind_port)
    cls = TCP4ClientEndpoint if family == AF_INET else TCP6ClientEndpoint
    return _construct("tcp", cls, host=host, port=port, timeout=timeout, bind_address=bind)


def _family_client_builder(prefix: str, cls: type) -> Callable[..., Any]:
    def build(host: str, port: int, timeout: float, bind_address, bind_port):
        bind = _bind_pair(bind_address, bind_port)
        return _construct(prefix, cls, host=host, port=port, timeout=timeout, bind_address=bind)

    return build


def _server_params(interface_default: str, v6only: bool) -> tuple[Param, ...]:
    params = (
        Param("port", port, positional=True, help="the port to listen on; 0 for any"),
        Param("backlog", integer(0), default=DEFAULT_BACKLOG),
        Param("interface", ip_literal, default=interface_default),
        Param("reusePort", boolean, default=False, target="reuse_port"),
    )
    if v6only:
        params += (Param("ipv6only", boolean, default=False),)
    return params


def _build_tcp_server(port: int, backlog: int, interface: str, reuse_port: bool, ipv6only: bool):
    # Twisted's tcp: is IPv4, but an IPv6 interface can only mean IPv6.
    if interface and literal_family(interface) == AF_INET6:
        return _construct(
            "tcp",
            TCP6ServerEndpoint,
            port=port,
            backlog=backlog,
            interface=interface,
            ipv6only=ipv6only,
            reuse_port=reuse_port,
        )
    if ipv6only:
        raise DescriptionError(
            "tcp: ipv6only applies to an IPv6 interface (use tcp6: or interface=[::])",
            prefix="tcp",
            parameter="ipv6only",
        )
    return _construct(
        "tcp", TCP4ServerEndpoint, port=port, backlog=backlog, interface=interface,
        reuse_port=reuse_port,
    )  # fmt: skip


def _build_tcp4_server(port: int, backlog: int, interface: str, reuse_port: bool):
    return _construct(
        "tcp4", TCP4ServerEndpoint, port=port, backlog=backlog, interface=interface,
        reuse_port=reuse_port,
    )  # fmt: skip


def _build_tcp6_server(port: int, backlog: int, interface: str, reuse_port: bool, ipv6only: bool):
    return _construct(
        "tcp6", TCP6ServerEndpoint, port=port, backlog=backlog, interface=interface,
        ipv6only=ipv6only, reuse_port=reuse_port,
    )  # fmt: skip


CLIENT_PARSERS = {
    "tcp": EndpointParser(
        "tcp",
        _client_params(race=True),
        _build_tcp_client,
        "TCP to a host: an IP literal picks its family; a name tries both families",
    ),
    "tcp4": EndpointParser(
        "tcp4",
        _client_params(),
        _family_client_builder("tcp4", TCP4ClientEndpoint),
        "TCP over IPv4 only",
    ),
    "tcp6": EndpointParser(
        "tcp6",
        _client_params(),
        _family_client_builder("tcp6", TCP6ClientEndpoint),
        "TCP over IPv6 only",
    ),
}

SERVER_PARSERS = {
    "tcp": EndpointParser(
        "tcp",
        _server_params("", v6only=True),
        _build_tcp_server,
        "listen for TCP (IPv4 unless the interface is an IPv6 address)",
    ),
    "tcp4": EndpointParser(
        "tcp4", _server_params("", v6only=False), _build_tcp4_server, "listen for TCP over IPv4"
    ),
    "tcp6": EndpointParser(
        "tcp6",
        _server_params("::", v6only=True),
        _build_tcp6_server,
        "listen for TCP over IPv6 (dual-stack unless ipv6only=1)",
    ),
}
