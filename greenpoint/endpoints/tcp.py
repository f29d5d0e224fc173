"""TCP over IPv4 and IPv6: client and server endpoints, and the ``tcp``/``tcp4``/``tcp6``
description prefixes.

Client endpoints connect to an IP literal directly (no resolver involved) or resolve a
host name for their one family only and try its addresses in order within one deadline.
``tcp:`` with a host name races both families (``HostnameEndpoint``); ``tcp4:`` and
``tcp6:`` pin one.

Server endpoints bind a gevent socket with ``SO_REUSEADDR`` (and optionally
``SO_REUSEPORT``) and return it as the listener. ``TCP6ServerEndpoint`` sets
``IPV6_V6ONLY`` explicitly, dual-stack by default, so behaviour does not depend on the
operating system's ``bindv6only`` default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket as _stdsocket
import time
from collections.abc import Callable
from typing import Any, ClassVar

import gevent
from gevent import socket as gsocket

from greenpoint._address import HostnameAddress, IPv4Address, IPv6Address
from greenpoint._params import Param, boolean, host, integer, ip_literal, number, port
from greenpoint._registry import EndpointParser
from greenpoint._socket import connect_address
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import (
    Attempt,
    ConnectError,
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    ListenError,
)

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

# The clock the name-connect deadline is measured with; tests may replace it.
_clock: Callable[[], float] = time.monotonic


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


def _connect_by_name(
    host: str,
    port: int,
    family: int,
    timeout: float | None,
    bind_address: tuple | None = None,
    resolver: Callable[..., Any] | None = None,
) -> Any:
    """Resolve ``host`` for ``family`` only and try its addresses in order.

    One deadline (``timeout`` seconds) covers resolution and every attempt; each
    attempt gets what is left of it. Blocks only the calling greenlet. Every socket
    opened is closed unless returned.

    ``HostnameEndpoint`` (happy eyeballs over both families) will replace this.

    Raises:
        DNSLookupError, ConnectTimeoutError, ConnectRefusedError, ConnectError: naming
            the host and listing every address tried.
    """
    resolve = resolver or gsocket.getaddrinfo
    target = HostnameAddress(host, port)
    start = _clock()
    deadline = None if timeout is None else start + timeout
    infos = _resolve(resolve, host, port, family, timeout, target)
    attempts: list[Attempt] = []
    for info_family, _type, _proto, _name, sockaddr in infos:
        remaining = None if deadline is None else deadline - _clock()
        if remaining is not None and remaining <= 0:
            break
        began = _clock()
        try:
            return connect_address(
                info_family, sockaddr, timeout=remaining, bind_address=bind_address
            )
        except ConnectError as exc:
            attempts.append(
                Attempt(exc.address or sockaddr, "connect", exc, began - start, _clock() - began)
            )
    raise _all_failed(target, attempts, timeout, len(infos))


def _resolve(
    resolve: Callable[..., Any],
    host: str,
    port: int,
    family: int,
    timeout: float | None,
    target: HostnameAddress,
) -> list:
    family_name = _FAMILY_NAMES[family]
    start = _clock()
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        infos = resolve(host, port, family, _stdsocket.SOCK_STREAM)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        message = (
            f"timed out after {_format_seconds(timeout)} s resolving {host!r} "
            f"to an {family_name} address"
        )
        attempt = Attempt(target, "resolve", TimeoutError(message), 0.0, _clock() - start)
        raise ConnectTimeoutError(message, address=target, attempts=[attempt]) from None
    except OSError as exc:  # socket.gaierror, or a resolver's own OSError
        reason = exc.strerror or str(exc)
        raise DNSLookupError(
            f"cannot resolve {host!r} to an {family_name} address: {reason}",
            address=target,
            attempts=[Attempt(target, "resolve", exc)],
        ) from exc
    finally:
        timer.close()
    infos = [info for info in infos if info[0] == family]
    if not infos:
        raise DNSLookupError(f"{host!r} has no {family_name} address", address=target)
    return infos


def _all_failed(
    target: HostnameAddress, attempts: list[Attempt], timeout: float | None, resolved: int
) -> ConnectError:
    errors = [attempt.error for attempt in attempts]
    if not attempts or isinstance(errors[-1], ConnectTimeoutError):
        tried = f"{len(attempts)} of {resolved} addresses tried"
        return ConnectTimeoutError(
            f"timed out after {_format_seconds(timeout or 0)} s connecting to {target} ({tried})",
            address=target,
            attempts=attempts,
        )
    if len(attempts) == 1:
        detail = f" at {attempts[0].address}: {_reason(errors[0])}"
    else:
        detail = f" ({len(attempts)} addresses tried)"
    if all(isinstance(error, ConnectRefusedError) for error in errors):
        return ConnectRefusedError(
            f"connection refused by {target}{detail}", address=target, attempts=attempts
        )
    return ConnectError(f"cannot connect to {target}{detail}", address=target, attempts=attempts)


def _reason(error: BaseException | None) -> str:
    # The OS's own words ("Connection refused"), not our message wrapped around them.
    cause = error.__cause__ if isinstance(error, ConnectError) else error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(error)


@dataclasses.dataclass(frozen=True)
class _TCPClientEndpoint(ClientEndpoint):
    """Shared by the IPv4 and IPv6 client endpoints; ``family`` tells them apart."""

    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    bind_address: Any = None

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
        the endpoint's ``timeout``), resolution included.

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
        return _connect_by_name(self.host, self.port, family, limit, bind)

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
    host: str, port: int, timeout: float, bind_address: tuple[str, int] | None
) -> ClientEndpoint:
    """The endpoint ``tcp:`` uses for a host name.

    HostnameEndpoint (happy eyeballs over both families) replaces this; until then a
    name goes over IPv4, or IPv6 when the bind address says so.
    """
    family = literal_family(bind_address[0]) if bind_address and bind_address[0] else None
    cls = TCP6ClientEndpoint if family == AF_INET6 else TCP4ClientEndpoint
    return _construct("tcp", cls, host=host, port=port, timeout=timeout, bind_address=bind_address)


def _client_params() -> tuple[Param, ...]:
    return (
        Param("host", host, positional=True, help="a host name or IP address"),
        Param("port", integer(1, 65535), positional=True, help="the port to connect to"),
        Param("timeout", number, default=DEFAULT_TIMEOUT, help="seconds, fractions allowed"),
        Param("bindAddress", ip_literal, default=None, target="bind_address"),
        Param("bindPort", port, default=0, target="bind_port"),
    )


def _build_tcp_client(host: str, port: int, timeout: float, bind_address, bind_port):
    bind = _bind_pair(bind_address, bind_port)
    family = literal_family(host)
    if family is None:
        return _endpoint_for_name(host, port, timeout, bind)
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
        _client_params(),
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
