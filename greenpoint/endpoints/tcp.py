"""The ``tcp``/``tcp4``/``tcp6`` descriptions; the endpoint classes are re-exported here.

``tcp:`` with an IP literal builds the endpoint of its family; with a host name it
builds a ``HostnameEndpoint``, which races both families; ``tcp4:`` and ``tcp6:`` pin
one. The classes live in ``greenpoint.endpoints._tcp_endpoints``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenpoint._checks import seconds
from greenpoint._defaults import DEFAULT_BACKLOG, DEFAULT_TIMEOUT
from greenpoint._hostnames import BindAddress
from greenpoint._interleave import DEFAULT_ATTEMPT_DELAY
from greenpoint._params import Param, boolean, choice, host, integer, ip_literal, number, port
from greenpoint._registry import EndpointParser
from greenpoint._sockopts import TCPOptions, tcp_option_params, tcp_options_from
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.endpoints._tcp_endpoints import (
    AF_INET,
    AF_INET6,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    literal_family,
)
from greenpoint.endpoints.hostname import HostnameEndpoint
from greenpoint.errors import DescriptionError

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "TCPOptions",
    "literal_family",
]


# -- descriptions ----------------------------------------------------------------

_NODELAY_CLIENT = Param("nodelay", boolean, default=True, help="TCP_NODELAY (0: leave Nagle on)")


def socket_params(nodelay: bool = True) -> tuple[Param, ...]:
    """``nodelay`` and the socket option keys, for every TCP client and server."""
    return ((_NODELAY_CLIENT,) if nodelay else ()) + tcp_option_params()


def with_socket_options(prefix: str, build: Callable[..., Any]) -> Callable[..., Any]:
    """``build`` taking ``tcp_options=`` in place of the option keys' values."""

    def build_with_options(**values: Any) -> Any:
        options = tcp_options_from(prefix, values)
        return build(tcp_options=options, **values)

    return build_with_options


def _endpoint_for_name(
    host: str,
    port: int,
    timeout: float,
    bind_address: Any,
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY,
    order: str = "race",
    **sockets: Any,
) -> ClientEndpoint:
    """The endpoint ``tcp:`` uses for a host name: happy eyeballs over both families.

    Several hosts separated by commas are raced as one (``HostnamesEndpoint``).
    """
    if "," in host:
        from greenpoint.endpoints.hostnames import HostnamesEndpoint, split_hosts

        return HostnamesEndpoint(
            [(name, port) for name in split_hosts(host)],
            timeout=timeout,
            bind_address=bind_address,
            attempt_delay=attempt_delay,
            order=order,
            **sockets,
        )
    return HostnameEndpoint(
        host,
        port,
        timeout=timeout,
        bind_address=bind_address,
        attempt_delay=attempt_delay,
        **sockets,
    )


def _bind_hosts(value: str) -> str:
    """One local IP literal, or one per family separated by a comma (``tcp:`` only)."""
    BindAddress.parse(value, field="bindAddress")  # refused here, naming the key
    return value.strip()


def _client_params(race: bool = False) -> tuple[Param, ...]:
    params = (
        Param(
            "host",
            host,
            positional=True,
            help="a host name or IP address; for tcp:, several separated by commas",
        ),
        Param("port", integer(1, 65535), positional=True, help="the port to connect to"),
        Param("timeout", number, default=DEFAULT_TIMEOUT, help="seconds, fractions allowed"),
    )
    if not race:
        return params + (
            Param("bindAddress", ip_literal, default=None, target="bind_address"),
            Param("bindPort", port, default=0, target="bind_port"),
            *socket_params(),
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
        Param(
            "order",
            choice("race", "sequence"),
            default="race",
            help="several hosts: race all (default) or try them in the order given",
        ),
        *socket_params(),
    )


def _build_tcp_client(
    host: str,
    port: int,
    timeout: float,
    bind_address: str | None,
    bind_port: int,
    attempt_delay: float,
    order: str,
    nodelay: bool = True,
    tcp_options: TCPOptions | None = None,
) -> ClientEndpoint:
    sockets: dict[str, Any] = {"nodelay": nodelay, "tcp_options": tcp_options or TCPOptions()}
    bind = BindAddress.parse(bind_address, port=bind_port)
    family = literal_family(host)
    if family is None:
        # What TCP4ClientEndpoint refuses for a literal (HostnameEndpoint allows 0).
        seconds("timeout", timeout, allow_none=False, zero=False)
        return _endpoint_for_name(host, port, timeout, bind, attempt_delay, order, **sockets)
    # An IP literal: one address, nothing to race, so attemptDelay has no effect. Of
    # one bind address per family, the endpoint keeps its own family's.
    cls = TCP4ClientEndpoint if family == AF_INET else TCP6ClientEndpoint
    return cls(host=host, port=port, timeout=timeout, bind_address=bind, **sockets)


def _family_client_builder(
    prefix: str, cls: type[TCP4ClientEndpoint | TCP6ClientEndpoint]
) -> Callable[..., Any]:
    def build(
        host: str,
        port: int,
        timeout: float,
        bind_address: str | None,
        bind_port: int,
        **sockets: Any,
    ) -> ClientEndpoint:
        bind = BindAddress.parse(bind_address, port=bind_port)
        return cls(host=host, port=port, timeout=timeout, bind_address=bind, **sockets)

    return with_socket_options(prefix, build)


def _server_params(interface_default: str, v6only: bool, tcp6: bool = False) -> tuple[Param, ...]:
    # Positional order as Twisted's parsers: tcp: port, interface, backlog
    # (_parseTCP); tcp6: port, backlog, interface (_TCP6ServerParser).
    backlog = Param("backlog", integer(0), default=DEFAULT_BACKLOG, positional=True, in_form=False)
    interface = Param(
        "interface", ip_literal, default=interface_default, positional=True, in_form=False
    )
    params = (
        Param("port", port, positional=True, help="the port to listen on; 0 for any"),
        *((backlog, interface) if tcp6 else (interface, backlog)),
        Param("reusePort", boolean, default=False, target="reuse_port"),
        Param("nodelay", boolean, default=True, help="TCP_NODELAY on accepted connections"),
        *tcp_option_params(),
    )
    if v6only:
        params += (Param("ipv6only", boolean, default=False),)
    return params


def _build_tcp_server(
    port: int,
    backlog: int,
    interface: str,
    reuse_port: bool,
    nodelay: bool,
    ipv6only: bool,
    tcp_options: TCPOptions,
) -> ServerEndpoint:
    # Twisted's tcp: is IPv4, but an IPv6 interface can only mean IPv6.
    if interface and literal_family(interface) == AF_INET6:
        return TCP6ServerEndpoint(
            port=port,
            backlog=backlog,
            interface=interface,
            ipv6only=ipv6only,
            reuse_port=reuse_port,
            nodelay=nodelay,
            tcp_options=tcp_options,
        )
    if ipv6only:
        raise DescriptionError(
            "tcp: ipv6only applies to an IPv6 interface (use tcp6: or interface=[::])",
            prefix="tcp",
            parameter="ipv6only",
        )
    return TCP4ServerEndpoint(
        port=port,
        backlog=backlog,
        interface=interface,
        reuse_port=reuse_port,
        nodelay=nodelay,
        tcp_options=tcp_options,
    )


def _build_tcp4_server(
    port: int,
    backlog: int,
    interface: str,
    reuse_port: bool,
    nodelay: bool,
    tcp_options: TCPOptions,
) -> ServerEndpoint:
    return TCP4ServerEndpoint(
        port=port,
        backlog=backlog,
        interface=interface,
        reuse_port=reuse_port,
        nodelay=nodelay,
        tcp_options=tcp_options,
    )


def _build_tcp6_server(
    port: int,
    backlog: int,
    interface: str,
    reuse_port: bool,
    nodelay: bool,
    ipv6only: bool,
    tcp_options: TCPOptions,
) -> ServerEndpoint:
    return TCP6ServerEndpoint(
        port=port,
        backlog=backlog,
        interface=interface,
        ipv6only=ipv6only,
        reuse_port=reuse_port,
        nodelay=nodelay,
        tcp_options=tcp_options,
    )


CLIENT_PARSERS = {
    "tcp": EndpointParser(
        "tcp",
        _client_params(race=True),
        with_socket_options("tcp", _build_tcp_client),
        "TCP to a host: an IP literal picks its family; a name tries both families; "
        "several hosts (a,b) are raced as one",
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
        with_socket_options("tcp", _build_tcp_server),
        "listen for TCP (IPv4 unless the interface is an IPv6 address)",
    ),
    "tcp4": EndpointParser(
        "tcp4",
        _server_params("", v6only=False),
        with_socket_options("tcp4", _build_tcp4_server),
        "listen for TCP over IPv4",
    ),
    "tcp6": EndpointParser(
        "tcp6",
        _server_params("::", v6only=True, tcp6=True),
        with_socket_options("tcp6", _build_tcp6_server),
        "listen for TCP over IPv6 (dual-stack unless ipv6only=1)",
    ),
}
