"""TLS endpoint classes; their ``ssl:`` and ``tls:`` descriptions are in ``tls.py``.

Clients: :class:`SSL4ClientEndpoint` (TCP, then TLS) and :func:`wrap_client_tls`
(TLS over any client endpoint). ``open()`` returns only after the handshake and
the certificate check succeeded, within one deadline for connecting and
handshaking together.

Servers: :class:`SSL4ServerEndpoint` and :func:`wrap_server_tls`; their listeners
do each handshake in the connection's own greenlet, bounded by
``handshake_timeout``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from socket import AF_INET6
from typing import TYPE_CHECKING, Any, ClassVar

from greenpoint._checks import check_timeout, hashable
from greenpoint._clock import monotonic
from greenpoint._defaults import DEFAULT_BACKLOG, DEFAULT_TIMEOUT
from greenpoint._description import Bracketed
from greenpoint._hostnames import BindAddress, literal_family
from greenpoint._sockopts import SocketOptionsHook, TCPOptions
from greenpoint._tls_listener import TLSListener
from greenpoint._tls_settings import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MINIMUM_VERSION,
)
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.endpoints._tcp_endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
)
from greenpoint.endpoints.hostname import HostnameEndpoint
from greenpoint.errors import ConnectTimeoutError, ListenError

if TYPE_CHECKING:
    from greenpoint.tls import ClientTLSOptions, TLSStream

__all__ = [
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TLSWrapperClientEndpoint",
    "TLSWrapperServerEndpoint",
    "wrapClientTLS",
    "wrapServerTLS",
    "wrap_client_tls",
    "wrap_server_tls",
]

DEFAULT_SERVER_PEM = "server.pem"  # Twisted's default privateKey for ssl: servers


def tls_module() -> Any:
    # pyOpenSSL is imported when a TLS endpoint is first made, not with greenpoint.
    from greenpoint import tls

    return tls


def _open_then_handshake(
    inner: Any, options: ClientTLSOptions, timeout: float | None, address: Any
) -> TLSStream:
    """Open ``inner`` and handshake, all within ``timeout`` seconds."""
    started = monotonic()
    # Read the trust roots and certificate first: a missing file is a local mistake,
    # to be reported (naming the file) before the network is touched.
    context = options.get_context()
    raw = inner.open(timeout=timeout)
    remaining = None if timeout is None else timeout - (monotonic() - started)
    if remaining is not None and remaining <= 0:
        raw.close()
        raise ConnectTimeoutError(
            f"timed out connecting to {address} before the TLS handshake", address=address
        )
    # nodelay=0 keeps Nagle on; our TCP endpoints have set TCP_NODELAY already.
    nodelay = getattr(inner, "nodelay", True) is not False and not _sets_nodelay(inner)
    return options.handshake_in(context, raw, remaining, address, nodelay)


def _sets_nodelay(inner: Any) -> bool:
    """Whether ``inner.open()`` returns sockets with ``TCP_NODELAY`` set: greenpoint's
    own TCP endpoints do, unless ``nodelay=False`` or a test's connector stands in."""
    kind = type(inner)
    if kind is HostnameEndpoint:
        return bool(inner.nodelay) and inner.connector is None
    return (kind is TCP4ClientEndpoint or kind is TCP6ClientEndpoint) and bool(inner.nodelay)


def _host_port(hostname: str | None, port_: Any) -> str:
    if hostname is None:
        return f"port {port_}"
    if literal_family(hostname) == AF_INET6:
        return f"[{hostname}]:{port_}"
    return f"{hostname}:{port_}"


def _bind_text(bind_address: BindAddress | None) -> str | None:
    """The ``bindAddress=`` of ``ssl:``/``tls:``, which have no ``bindPort``."""
    if bind_address is None:
        return None
    keys = bind_address.description_keys()
    if "bindPort" in keys:
        raise ValueError(f"bind address {bind_address!r} has no description form")
    return str(keys["bindAddress"])


def tcp_server_endpoint(port: int, backlog: int, interface: str, **sockets: Any) -> Any:
    """The TCP server endpoint under TLS: IPv6 for an IPv6 interface, else IPv4.

    ``sockets`` are the TCP endpoint's ``nodelay``, ``tcp_options``, ``socket_options``.
    """

    family = TCP6ServerEndpoint if literal_family(interface) == AF_INET6 else TCP4ServerEndpoint
    return family(port, backlog=backlog, interface=interface, **sockets)


# Fields that hold a PEM file's path, or its data (which no description can say).
_PEM_FIELDS = ("trust_root", "certificate", "private_key", "extra_chain", "client_ca")


def _tls_values(options: Any, **keywords: str) -> dict[str, Any]:
    """The TLS options' fields by ``Param`` keyword (``keywords`` renames the fields
    whose keys differ between ``ssl:`` and ``tls:``). A PEM given as data rather
    than a file, and an empty list, read as not given: the key is left out."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if field.name in _PEM_FIELDS and not isinstance(value, str):
            value = None
        values[keywords.get(field.name, field.name)] = None if value == () else value
    return values


# -- clients ---------------------------------------------------------------


@dataclasses.dataclass(eq=True)
class SSL4ClientEndpoint(ClientEndpoint):
    """TCP to ``host:port``, then TLS; ``open()`` returns once verified.

    ``tls_options`` is :class:`~greenpoint.tls.ClientTLSOptions` (from
    ``options_for_client_tls``) or a ready ``OpenSSL.SSL.Context`` (the server's
    certificate is then checked against ``host``). ``timeout`` covers the TCP
    connect and the handshake together.
    """

    host: str
    port: int
    tls_options: Any
    timeout: float | None = DEFAULT_TIMEOUT
    bind_address: Any = None
    nodelay: bool = dataclasses.field(default=True, kw_only=True)
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )
    prefix: ClassVar[str] = "ssl"
    # Per instance: (the fields it was made of, the TCP endpoint) of the last _tcp().
    # The fields are public and may be assigned after an open: a changed one makes
    # a new TCP endpoint.
    _inner: ClassVar[tuple[tuple[Any, ...], Any] | None] = None

    def __post_init__(self) -> None:
        check_timeout(self.timeout)
        self.tls_options = tls_module().client_options_for(self.tls_options, self.host)
        # A bad host, port or bind address is refused now, not at open().
        self.bind_address = self._tcp().bind_address

    def _tcp(self) -> Any:
        """The TCP endpoint under TLS (its deadline is given to its ``open``)."""
        key = (
            self.host,
            self.port,
            self.bind_address,
            self.nodelay,
            self.tcp_options,
            self.socket_options,
        )
        cached = self._inner
        if cached is not None and cached[0] == key:
            return cached[1]
        # A name is resolved for IPv4 only, as Twisted's SSL4ClientEndpoint does.
        family = TCP6ClientEndpoint if literal_family(self.host) == AF_INET6 else TCP4ClientEndpoint
        endpoint = family(
            self.host,
            self.port,
            bind_address=self.bind_address,
            nodelay=self.nodelay,
            tcp_options=self.tcp_options,
            socket_options=self.socket_options,
        )
        if hashable(key):  # a list could change in place and leave it stale
            object.__setattr__(self, "_inner", (key, endpoint))  # per instance
        return endpoint

    def open(self, timeout: float | None = None) -> TLSStream:
        """Connect, handshake and verify; blocks only the calling greenlet.

        Raises:
            ConnectError: the TCP connection failed.
            TLSVerificationError: the certificate was refused (``.reason``).
            TLSError: the handshake failed otherwise.
            ConnectTimeoutError: ``timeout`` (or the endpoint's) passed first.
        """
        check_timeout(timeout)
        total = self.timeout if timeout is None else timeout
        address = _host_port(self.host, self.port)
        return _open_then_handshake(self._tcp(), self.tls_options, total, address)

    def description_values(self) -> Mapping[str, Any]:
        options = _tls_values(self.tls_options, certificate="cert_key", trust_root="ca_certs_dir")
        hostname = None if self.tls_options.hostname == self.host else self.tls_options.hostname
        return {
            **options,
            **super().description_values(),
            **self.tcp_options.description_values(),
            "bind_address": _bind_text(self.bind_address),
            "hostname": hostname,
        }


@dataclasses.dataclass(eq=True)
class TLSWrapperClientEndpoint(ClientEndpoint):
    """TLS over whatever ``endpoint.open()`` returns (see :func:`wrap_client_tls`)."""

    tls_options: ClientTLSOptions
    endpoint: Any
    timeout: float | None = None
    prefix: ClassVar[str] = "tls"
    # Per instance: (hostname, port, text) of the last _address(). The fields are
    # public (a user may swap the options or change the inner endpoint's port), so
    # the text is remembered by the values it was made of.
    _shown: ClassVar[tuple[str | None, int, str] | None] = None

    def __post_init__(self) -> None:
        _check_inner(self.endpoint, "open", "wrap_client_tls", "client_from_string")
        check_timeout(self.timeout)
        self.tls_options = tls_module().client_options_for(
            self.tls_options, getattr(self.endpoint, "host", None)
        )

    def _address(self) -> str:
        port_ = getattr(self.endpoint, "port", None)
        hostname = self.tls_options.hostname
        shown = self._shown
        if shown is not None and shown[0] == hostname and shown[1] == port_:
            return shown[2]
        if port_ is None:
            return str(hostname)
        text = _host_port(hostname, port_)
        if type(port_) is int and (hostname is None or type(hostname) is str):
            object.__setattr__(self, "_shown", (hostname, port_, text))  # per instance
        return text

    def open(self, timeout: float | None = None) -> TLSStream:
        """Open the inner endpoint and handshake, within one deadline.

        ``timeout`` defaults to this endpoint's, else the inner endpoint's.
        """
        check_timeout(timeout)
        if timeout is None:
            timeout = self.timeout
        if timeout is None:
            timeout = getattr(self.endpoint, "timeout", DEFAULT_TIMEOUT)
        return _open_then_handshake(self.endpoint, self.tls_options, timeout, self._address())

    def description_values(self) -> Mapping[str, Any]:
        options = _tls_values(self.tls_options, trust_root="trust_roots")
        inner = self.endpoint
        # tls:host:port parses to a wrapper without a timeout of its own (the inner
        # HostnameEndpoint has it); a wrapper that has one keeps the endpoint= form.
        plain = _is_plain_hostname_endpoint(inner) and self.timeout is None
        if plain and inner.host == self.tls_options.hostname:
            timeout = None if inner.timeout == DEFAULT_TIMEOUT else inner.timeout
            return {**options, **inner.description_values(), "timeout": timeout}
        return {
            **options,
            "host": self.tls_options.hostname,
            "endpoint": Bracketed(str(inner)),
            "timeout": self.timeout,
        }


def _is_plain_hostname_endpoint(endpoint: Any) -> bool:
    """A HostnameEndpoint with nothing a ``tls:host:port`` string cannot say."""
    if not (
        type(endpoint) is HostnameEndpoint
        and getattr(endpoint, "resolver", None) is None
        and getattr(endpoint, "socket_options", None) is None
        and getattr(endpoint, "attempt_delay", 0.25) == 0.25
    ):
        return False
    try:  # a bind port cannot be said in tls:'s own keys; endpoint= can say it
        _bind_text(endpoint.bind_address)
    except ValueError:
        return False
    return True


def _check_inner(endpoint: Any, method: str, call: str, parser: str) -> None:
    # A description string here would fail only at open()/bind(), far from the call.
    if not callable(getattr(endpoint, method, None)):
        hint = (
            f"; for a description use {parser}({endpoint!r})" if isinstance(endpoint, str) else ""
        )
        raise TypeError(
            f"{call}() needs an endpoint object with {method}(), "
            f"not {type(endpoint).__name__} {endpoint!r}{hint}"
        )


def wrap_client_tls(tls_options: Any, endpoint: Any) -> TLSWrapperClientEndpoint:
    """A client endpoint that speaks TLS over ``endpoint``'s connections.

    ``open()`` opens ``endpoint`` and handshakes within one deadline, and returns
    only once the server's certificate was verified.
    """
    return TLSWrapperClientEndpoint(tls_options, endpoint)


wrapClientTLS = wrap_client_tls


# -- servers ---------------------------------------------------------------


def _loaded(options: Any, what: str) -> Any:
    """Server options whose files were read (errors now, at bind time)."""
    options = tls_module().server_options_for(options)
    try:
        options.get_context()
    except (OSError, ValueError) as exc:
        raise ListenError(f"cannot listen on {what}: {exc}") from exc
    return options


@dataclasses.dataclass(eq=True)
class SSL4ServerEndpoint(ServerEndpoint):
    """Listen on TCP ``port`` and speak TLS with ``tls_options``.

    ``tls_options`` is :class:`~greenpoint.tls.ServerTLSOptions`,
    :class:`~greenpoint.tls.SNIServerOptions` or a ready ``OpenSSL.SSL.Context``.
    Each handshake must finish within ``handshake_timeout`` seconds.
    """

    port: int
    tls_options: Any
    backlog: int = DEFAULT_BACKLOG
    interface: str = ""
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    nodelay: bool = dataclasses.field(default=True, kw_only=True)
    tcp_options: TCPOptions = dataclasses.field(default_factory=TCPOptions, kw_only=True)
    socket_options: SocketOptionsHook = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )
    prefix: ClassVar[str] = "ssl"

    def __post_init__(self) -> None:
        check_timeout(self.handshake_timeout, "handshake_timeout")
        self.tls_options = tls_module().server_options_for(self.tls_options)

    def bind(self) -> TLSListener:
        """Read the certificates, bind and listen; returns a TLS listener."""
        options = _loaded(self.tls_options, f"ssl:{self.port}")
        inner = tcp_server_endpoint(
            self.port,
            self.backlog,
            self.interface,
            nodelay=self.nodelay,
            tcp_options=self.tcp_options,
            socket_options=self.socket_options,
        ).bind()
        return TLSListener(inner, options, self.handshake_timeout, self.nodelay)

    def description_values(self) -> Mapping[str, Any]:
        options = _tls_values(self.tls_options, extra_chain="extra_cert_chain")
        # privateKey names the key file, and the certificate too unless certKey does.
        certificate = options.pop("certificate", None)
        key = options.get("private_key") or certificate
        if options.get("minimum_version") == DEFAULT_MINIMUM_VERSION:
            options["minimum_version"] = None  # ssl:'s default: none given (sslmethod may say)
        return {
            **options,
            **super().description_values(),
            **self.tcp_options.description_values(),
            "private_key": key,
            "cert_key": None if certificate == key else certificate,
        }


@dataclasses.dataclass(eq=True)
class TLSWrapperServerEndpoint(ServerEndpoint):
    """TLS over every connection ``endpoint`` accepts (see :func:`wrap_server_tls`)."""

    tls_options: Any
    endpoint: Any
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    prefix: ClassVar[str] = "tls"

    def __post_init__(self) -> None:
        _check_inner(self.endpoint, "bind", "wrap_server_tls", "server_from_string")
        check_timeout(self.handshake_timeout, "handshake_timeout")
        self.tls_options = tls_module().server_options_for(self.tls_options)

    def bind(self) -> TLSListener:
        """Read the certificates, bind the inner endpoint; returns a TLS listener."""
        options = _loaded(self.tls_options, str(self))
        nodelay = getattr(self.endpoint, "nodelay", True) is not False
        return TLSListener(self.endpoint.bind(), options, self.handshake_timeout, nodelay)

    def description_values(self) -> Mapping[str, Any]:
        options = self.tls_options
        inner = self.endpoint
        if not isinstance(options, tls_module().SNIServerOptions) or not _is_tcp_server(inner):
            raise ValueError(
                "only a PEM directory over TCP (tls:DIRECTORY:port=...) has a description"
            )
        return {
            **_tls_values(options, directory="path"),
            **inner.description_values(),
            "handshake_timeout": self.handshake_timeout,
        }

    def __str__(self) -> str:
        try:
            return super().__str__()
        except ValueError:
            return repr(self)


def _is_tcp_server(endpoint: Any) -> bool:
    """A TCP server endpoint that a ``tls:`` description can say."""

    if getattr(endpoint, "socket_options", None) is not None:
        return False
    if type(endpoint) is TCP6ServerEndpoint:
        return not endpoint.ipv6only and not endpoint.reuse_port
    if type(endpoint) is TCP4ServerEndpoint:
        return bool(endpoint.interface) and not endpoint.reuse_port
    return False


def wrap_server_tls(
    tls_options: Any, endpoint: Any, handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
) -> TLSWrapperServerEndpoint:
    """A server endpoint that speaks TLS on every connection ``endpoint`` accepts.

    The handshake runs in each connection's greenlet (``prepare``) and must end
    within ``handshake_timeout`` seconds (``None``: no limit, not recommended).
    """
    return TLSWrapperServerEndpoint(tls_options, endpoint, handshake_timeout)


wrapServerTLS = wrap_server_tls  # Twisted's spelling, as wrapClientTLS
