"""``HostnameEndpoint``: connect to a name over IPv6 and IPv4, whichever works first.

This is what ``tcp:example.com:80`` builds (a ``tcp:`` client description whose host
is a name; ``tcp4:``/``tcp6:`` pin one family and IP literals connect directly) and
what ``tls:`` connects with underneath. The race itself is in
``greenpoint._happy_eyeballs``; this module is the configuration object.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from greenpoint._checks import check_timeout
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._happy_eyeballs import ConnectInfo, open_tcp_connection
from greenpoint._hostnames import encode_hostname, normalize_bind_address, parse_ip_literal
from greenpoint._interleave import DEFAULT_ATTEMPT_DELAY
from greenpoint._sockopts import (
    SocketOptionsHook,
    TCPOptionError,
    TCPOptions,
    check_socket_fields,
    configured_connect,
    socket_configurer,
)
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.errors import DescriptionError

__all__ = ["ConnectInfo", "HostnameEndpoint", "bind_address_text", "tcp_description_values"]


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
    bind_address: Any = None
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

    def __post_init__(self) -> None:
        self.host = _checked_host(self.host)
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise DescriptionError(
                f"port must be a whole number, not {self.port!r}", prefix="tcp", parameter="port"
            )
        if not 0 < self.port <= 65535:
            raise DescriptionError(
                f"port must be from 1 to 65535, not {self.port}", prefix="tcp", parameter="port"
            )
        if self.timeout is not None:
            _check_seconds(self.timeout, "timeout")
        _check_seconds(self.attempt_delay, "attemptDelay")
        try:
            self.bind_address = normalize_bind_address(self.bind_address)
        except (ValueError, TypeError) as exc:
            raise DescriptionError(str(exc), prefix="tcp", parameter="bindAddress") from exc
        try:
            self.socket_options = check_socket_fields(
                self.nodelay, self.tcp_options, self.socket_options
            )
        except TCPOptionError as exc:
            raise TypeError(str(exc)) from None

    def description_values(self) -> Mapping[str, Any]:
        return tcp_description_values(self)

    def _connect(self) -> Callable[..., Any] | None:
        # The connector seam (tests) wins; otherwise one with the socket options.
        if self.connector is not None:
            return self.connector
        configure = socket_configurer(self.tcp_options, self.socket_options)
        return configured_connect(self.nodelay, configure)

    def open(self, timeout: float | None = None) -> Any:
        """Connect and return the connected gevent socket.

        Blocks only the calling greenlet. ``timeout`` overrides the endpoint's own.
        See :meth:`open_with_info` for the errors, and to learn how it connected.
        """
        return self.open_with_info(timeout)[0]

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


def _checked_host(host: Any) -> str:
    if isinstance(host, bytes | bytearray):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise DescriptionError(
                f"a host name given as bytes must be ASCII (IDNA-encoded), not {host!r}",
                prefix="tcp",
                parameter="host",
            ) from None
    if not isinstance(host, str):
        raise DescriptionError(
            f"host must be a str, not {type(host).__name__}", prefix="tcp", parameter="host"
        )
    try:
        if parse_ip_literal(host, 0) is None:
            encode_hostname(host)
    except ValueError as exc:
        raise DescriptionError(str(exc), prefix="tcp", parameter="host") from exc
    return host


def _check_seconds(value: Any, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise DescriptionError(
            f"{name} must be a finite number of seconds, zero or more, not {value!r}",
            prefix="tcp",
            parameter=name,
        )


def tcp_description_values(endpoint: Any) -> dict[str, Any]:
    """``endpoint``'s fields, socket options and bind address by ``tcp:`` keyword."""
    values = {**ClientEndpoint.description_values(endpoint)}
    values.update(endpoint.tcp_options.description_values())
    if endpoint.bind_address is not None:
        values["bind_address"] = bind_address_text(endpoint.bind_address)
        values["bind_port"] = _shared_bind_port(endpoint.bind_address)
    return values


def bind_address_text(bind_address: Any) -> str:
    """The ``bindAddress=`` text for a normalised bind address (hosts only).

    The port goes in ``bindPort=`` (see :func:`_shared_bind_port`).
    """
    if isinstance(bind_address, dict):
        return ",".join(host for host, _ in bind_address.values())
    host: str = bind_address[0]
    return host


def _shared_bind_port(bind_address: Any) -> int:
    """The ``bindPort=`` of a normalised bind address: its port, or the one port all
    its families share. Different ports per family cannot be written in a
    description; they are left out (0)."""
    if isinstance(bind_address, dict):
        ports = {bind_port for _, bind_port in bind_address.values()}
        return ports.pop() if len(ports) == 1 else 0
    bind_port: int = bind_address[1]
    return bind_port
