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
from greenpoint._checks import check_timeout
from greenpoint._description import Description, parse_description
from greenpoint._params import Param, bind, integer, number
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
    "wrap_haproxy",
    "wrap_haproxy_client",
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
        check_timeout(self.timeout)
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if self.max_size < 16:
            raise ValueError(f"max_size must be at least 16 bytes, not {self.max_size!r}")
        self.allow = _networks(self.allow)

    def bind(self) -> HAProxyListener:
        """Bind the wrapped endpoint and return a listener that reads headers."""
        return HAProxyListener(
            self.endpoint.bind(), timeout=self.timeout, allow=self.allow, max_size=self.max_size
        )

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """The wrapper's own keywords; ``str()`` appends the wrapped description."""
        kwargs: dict[str, Any] = {}
        if self.timeout != DEFAULT_HEADER_TIMEOUT:
            kwargs["timeout"] = "none" if self.timeout is None else _seconds_text(self.timeout)
        if self.allow is not None:
            kwargs["allow"] = ",".join(str(network) for network in self.allow)
        if self.max_size != DEFAULT_MAX_SIZE:
            kwargs["maxSize"] = self.max_size
        return self.prefix, (), kwargs

    def __str__(self) -> str:
        prefix, _, kwargs = self.description_parts()
        own = [f"{key}={_format_value(str(value))}" for key, value in kwargs.items()]
        return ":".join([prefix, *own, str(self.endpoint)])


def wrap_haproxy(
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
    ip = ipaddress.ip_address(proxy.host.split("%", 1)[0])
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
            raise ValueError(f"{item!r} is not an IP network (such as 10.0.0.0/8 or ::1)") from None
    if not networks:
        raise ValueError("expected at least one IP network, such as 10.0.0.0/8")
    return tuple(networks)


# --- the description parser ------------------------------------------------------------


def _timeout(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    seconds = number(text)
    if seconds == 0:
        raise ValueError("must be more than 0 seconds (or none for no limit)")
    return seconds


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
        own, inner = _split_own_keywords(description.rest)
        if not inner:
            raise DescriptionError(
                "haproxy: missing the wrapped server description, as in haproxy:tcp:8080",
                prefix=self.prefix,
            )
        values = bind(self.prefix, (), own, self.params)
        return HAProxyServerEndpoint(server_from_string(inner), **values)


def _split_own_keywords(rest: str) -> tuple[dict[str, str], str]:
    """Leading ``key=value`` segments are the wrapper's; the first positional segment
    (the wrapped description's prefix) starts the rest, kept raw."""
    own: dict[str, str] = {}
    while rest:
        end = _segment_end(rest)
        segment = parse_description("x:" + rest[:end])
        if not segment.kwargs:
            break
        own.update(segment.kwargs)
        rest = rest[end + 1 :]
    return own, rest


def _segment_end(text: str) -> int:
    """Index of the ``:`` that ends the first raw segment (or ``len(text)``), by the
    rules of :mod:`greenpoint._description`: ``\\`` escapes, ``[...]`` at the start
    of a value hides ``:``."""
    i, at_value_start, seen_assign = 0, True, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            i, at_value_start = i + 2, False
            continue
        if char == "[" and at_value_start:
            close = text.find("]", i + 1)
            if close < 0:
                return len(text)  # the real parser reports the unclosed bracket
            i, at_value_start = close + 1, False
            continue
        if char == ":":
            return i
        at_value_start = char == "=" and not seen_assign
        seen_assign = seen_assign or char == "="
        i += 1
    return len(text)


def _seconds_text(seconds: float) -> str:
    # repr, not "%g": 10.46875 must not come back as 10.4688.
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _format_value(value: str) -> str:
    if ":" in value and "]" not in value:
        return f"[{value}]"  # IPv6 networks read better bracketed
    from greenpoint._description import quote_string_argument

    return quote_string_argument(value)


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


def wrap_haproxy_client(
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
