"""``haproxy:`` — any server endpoint behind a proxy that speaks the PROXY protocol.

``haproxy:tcp:8080``, ``haproxy:unix:/run/app.sock``, ``haproxy:ssl:8443:...`` (the
header comes before TLS). The wrapper's own keywords come first, before the wrapped
description, and end at its prefix::

    haproxy:timeout=2:allow=[10.0.0.0/8,fd00::/8]:tcp:8080

A value holding IPv6 colons is bracketed whole (as above) or has its colons escaped.

Each connection's header is read in the connection's own greenlet with a deadline,
so a silent client holds up nobody; the handler (or protocol) starts only after it,
with the original client as its address.

:class:`HAProxyClientEndpoint` is the other side: it sends a header first.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Union, cast

from greenpoint._address import (
    HostnameAddress,
    IPv4Address,
    IPv6Address,
    PipeAddress,
    UNIXAddress,
    as_address,
    peer_address,
)
from greenpoint._checks import FieldError, check_timeout, seconds, whole_number
from greenpoint._description import Bracketed, Description, split_leading_keywords
from greenpoint._hostnames import split_ip_literal
from greenpoint._params import Param, bind, format_value, integer, number, register_inverse
from greenpoint._proxied_stream import ProxiedStream, read_proxy_header
from greenpoint._proxy_header import DEFAULT_MAX_SIZE
from greenpoint._proxy_header_encode import encode_proxy_header
from greenpoint._wrapping_listener import WrappingListener
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import DescriptionError, ProxyHeaderError

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "HAProxyClientEndpoint",
    "HAProxyListener",
    "HAProxyServerEndpoint",
    "SERVER_PARSERS",
    "wrap_client_haproxy",
    "wrap_haproxy",
    "wrap_haproxy_client",
    "wrap_server_haproxy",
]

logger = logging.getLogger("greenpoint.haproxy")

# A proxy writes its header at once when it connects (§2.1, §2.2 "sent at once"), so a
# few seconds is generous; a client that is silent longer is closed.
DEFAULT_HEADER_TIMEOUT = 5.0

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_ADDRESS_TYPES = (IPv4Address, IPv6Address, UNIXAddress, HostnameAddress, PipeAddress)


# --- server side -----------------------------------------------------------------------


@dataclasses.dataclass(eq=True)
class HAProxyServerEndpoint(ServerEndpoint):
    """Serve ``endpoint``'s connections, each starting with a PROXY v1 or v2 header.

    ``timeout``: seconds allowed for the whole header (``None``: no limit).
    ``allow``: proxy networks allowed to connect (``"10.0.0.0/8,::1"`` or networks);
    ``None`` allows every source. It is checked against the connecting proxy's own
    address, before any byte is read; UNIX-socket peers have no address and pass.
    ``max_size``: the longest v2 header accepted, in bytes.
    """

    endpoint: Any
    timeout: float | None = DEFAULT_HEADER_TIMEOUT
    allow: tuple[IPNetwork, ...] | None = None
    max_size: int = DEFAULT_MAX_SIZE
    prefix: ClassVar[str] = "haproxy"

    def __post_init__(self) -> None:
        seconds("timeout", self.timeout, zero=False)
        whole_number("max_size", self.max_size, 16)  # bytes: the v2 header's fixed part
        self.allow = _networks(self.allow)

    def bind(self) -> HAProxyListener:
        """Bind the wrapped endpoint and return a listener that reads headers."""
        return HAProxyListener(
            self.endpoint.bind(), timeout=self.timeout, allow=self.allow, max_size=self.max_size
        )

    def description_tail(self) -> str:
        """After the wrapper's own keys: the wrapped endpoint's whole description."""
        return str(self.endpoint)


def wrap_server_haproxy(
    endpoint: Any,
    timeout: float | None = DEFAULT_HEADER_TIMEOUT,
    allow: str | Iterable[Any] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> HAProxyServerEndpoint:
    """Wrap a server endpoint so that every connection starts with a PROXY header.

    The handler gets the original client as its address, and ``getpeername()``/
    ``getPeer()`` on the stream report it (see :class:`HAProxyServerEndpoint`).
    """
    # The field is typed as stored; __post_init__ turns a str or iterable into networks.
    networks = cast("tuple[IPNetwork, ...] | None", allow)
    return HAProxyServerEndpoint(endpoint, timeout=timeout, allow=networks, max_size=max_size)


# The first name it had (and ``proxyEndpoint``, Twisted's, in greenpoint's top level).
wrap_haproxy = wrap_server_haproxy


class HAProxyListener(WrappingListener):
    """What :meth:`HAProxyServerEndpoint.bind` returns (the listener protocol of
    :mod:`greenpoint.endpoints._base`).

    ``accept_unprepared()`` is the wrapped listener's cheap raw accept;
    ``prepare()`` runs in the connection's own greenlet: allowlist, header (with
    its deadline), then the wrapped listener's own ``prepare`` (a TLS handshake).
    """

    def __init__(
        self,
        listener: Any,
        *,
        timeout: float | None = DEFAULT_HEADER_TIMEOUT,
        allow: Iterable[IPNetwork] | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        super().__init__(listener)
        self.timeout = timeout
        self.allow = _networks(allow)
        self.max_size = max_size

    def prepare(self, stream: Any, address: Any) -> tuple[Any, Any]:
        """Check the proxy, read its header, run the wrapped listener's preparation.

        Returns ``(stream, client address)``. Blocks only the calling greenlet, for
        at most ``timeout`` seconds for the header.

        Raises:
            ProxyHeaderError: refused source, bad or late header; it is logged and
                the connection is already closed.
        """
        proxy = as_address(None, address, stream)
        try:
            if not isinstance(proxy, _ADDRESS_TYPES):  # a sockaddr we cannot read
                proxy = peer_address(stream)
            if not _allowed(proxy, self.allow):
                raise ProxyHeaderError(
                    f"refused: {proxy} is not in the allowed proxy networks "
                    f"({', '.join(str(network) for network in self.allow or ())})"
                )
            header, rest = read_proxy_header(stream, self.timeout, self.max_size)
        except ProxyHeaderError as exc:
            logger.warning("PROXY connection from %s closed: %s", proxy, exc)
            stream.close()
            raise
        except BaseException:
            stream.close()
            raise
        proxied = ProxiedStream(stream, header, proxy, rest)
        client = proxied.getPeer()
        ready, _ = self._prepare_inner(proxied, client)
        if ready is not proxied:
            try:  # let the handler find the TLVs on a TLS stream too
                ready.proxy_header = header
            except (AttributeError, TypeError):
                pass
        return ready, client


def _allowed(proxy: Any, allow: tuple[IPNetwork, ...] | None) -> bool:
    if allow is None:
        return True
    if not isinstance(proxy, IPv4Address | IPv6Address):
        return True  # a UNIX peer has no address; the socket's file mode guards it
    literal = split_ip_literal(proxy.host)
    if literal is None:
        return False  # an address object always holds a literal; refuse, not crash
    ip = literal.ip_address()
    return any(ip in network for network in allow)


def _networks(value: str | Iterable[Any] | None) -> tuple[IPNetwork, ...] | None:
    """``"10.0.0.0/8, ::1"`` or an iterable of networks/strings, as networks."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except (ValueError, TypeError):
            raise FieldError(
                "allow", f"{item!r} is not an IP network (such as 10.0.0.0/8 or ::1)"
            ) from None
    if not networks:
        raise FieldError("allow", "expected at least one IP network, such as 10.0.0.0/8")
    return tuple(networks)


# --- the description parser ------------------------------------------------------------


def _timeout(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    seconds = number(text)
    if seconds == 0:
        raise ValueError("must be more than 0 seconds (or none for no limit)")
    return seconds


def _networks_text(networks: tuple[IPNetwork, ...]) -> str:
    text = ",".join(str(network) for network in networks)
    return Bracketed(text) if ":" in text else text  # IPv6 networks read better bracketed


register_inverse(_timeout, format_value)  # None is "none"
register_inverse(_networks, _networks_text)


_PARAMS = (
    Param("timeout", _timeout, DEFAULT_HEADER_TIMEOUT, help="seconds allowed for the header"),
    Param("allow", _networks, None, help="allowed proxy networks, comma-separated"),
    Param("maxSize", integer(16, 16 + 0xFFFF), DEFAULT_MAX_SIZE, target="max_size"),
)


class _HAProxyServerParser:
    """``haproxy:[timeout=..:][allow=..:][maxSize=..:]<server description>``."""

    prefix = "haproxy"
    params = _PARAMS
    summary = "any server endpoint behind a PROXY protocol v1/v2 proxy"

    def parse(self, description: Description) -> HAProxyServerEndpoint:
        from greenpoint._registry import server_from_string

        assert description.rest is not None  # Description.__post_init__ fills it in
        own, inner = split_leading_keywords(description.rest)
        if not inner:
            raise DescriptionError(
                "haproxy: missing the wrapped server description, as in haproxy:tcp:8080",
                prefix=self.prefix,
            )
        values = bind(self.prefix, (), own, self.params)
        return HAProxyServerEndpoint(server_from_string(inner), **values)


SERVER_PARSERS = {"haproxy": _HAProxyServerParser()}


# --- client side -----------------------------------------------------------------------


@dataclasses.dataclass(eq=True)
class HAProxyClientEndpoint(ClientEndpoint):
    """Connect with ``endpoint`` and send a PROXY header before anything else.

    For tests and for chaining proxies: the header says that ``source`` connected
    to ``destination`` (neither: v2 ``LOCAL`` / v1 ``UNKNOWN``). v2 may carry
    ``tlvs`` (``(type, bytes)`` pairs) and a CRC32C ``checksum``. There is no
    description string for it: the addresses are per connection.
    """

    endpoint: Any
    source: Any = None
    destination: Any = None
    version: int = 2
    tlvs: tuple[tuple[int, bytes], ...] = ()
    checksum: bool = False
    header: bytes = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tlvs = tuple((int(kind), bytes(value)) for kind, value in self.tlvs)
        self.header = encode_proxy_header(
            self.source,
            self.destination,
            version=self.version,
            tlvs=self.tlvs,
            checksum=self.checksum,
        )

    def open(self, timeout: float | None = None) -> Any:
        """Connect, send the header, return the stream; blocks the calling greenlet."""
        check_timeout(timeout)
        stream = self.endpoint.open(timeout)
        try:
            stream.sendall(self.header)
        except BaseException:
            stream.close()
            raise
        return stream

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        raise NotImplementedError("a PROXY header client has no description string")

    def __str__(self) -> str:
        header = f"v{self.version} {self.source} -> {self.destination}"
        return f"<PROXY header {header}, then {self.endpoint}>"


def wrap_client_haproxy(
    endpoint: Any,
    source: Any = None,
    destination: Any = None,
    *,
    version: int = 2,
    tlvs: Iterable[tuple[int, bytes]] = (),
    checksum: bool = False,
) -> HAProxyClientEndpoint:
    """Wrap a client endpoint so that each connection first sends a PROXY header."""
    return HAProxyClientEndpoint(
        endpoint, source, destination, version=version, tlvs=tuple(tlvs), checksum=checksum
    )


# The name it had first, kept for programs written against it.
wrap_haproxy_client = wrap_client_haproxy
