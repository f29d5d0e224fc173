"""TLS endpoints and the ``ssl:`` and ``tls:`` descriptions.

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
import time
from typing import TYPE_CHECKING, Any, ClassVar

from greenpoint._params import Param, boolean, host, integer, ip_literal, number, port, text
from greenpoint._registry import EndpointParser, client_from_string
from greenpoint._tls_listener import TLSListener
from greenpoint._tls_settings import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MINIMUM_VERSION,
    DEFAULT_RELOAD_INTERVAL,
    normalize_alpn,
    normalize_tls_version,
)
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import ConnectTimeoutError, DescriptionError, ListenError

if TYPE_CHECKING:
    from greenpoint.tls import ClientTLSOptions, TLSStream

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TLSWrapperClientEndpoint",
    "TLSWrapperServerEndpoint",
    "wrapClientTLS",
    "wrap_client_tls",
    "wrap_server_tls",
]

DEFAULT_TIMEOUT = 30.0  # seconds, Twisted's connect timeout
DEFAULT_BACKLOG = 50


def _tls() -> Any:
    # pyOpenSSL is imported when a TLS endpoint is first made, not with greenpoint.
    from greenpoint import tls

    return tls


def _deadline_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _open_then_handshake(
    inner: Any, options: ClientTLSOptions, timeout: float | None, address: Any
) -> TLSStream:
    """Open ``inner`` and handshake, all within ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    raw = inner.open(timeout=timeout)
    remaining = _deadline_left(deadline)
    if remaining is not None and remaining <= 0:
        raw.close()
        raise ConnectTimeoutError(
            f"timed out connecting to {address} before the TLS handshake", address=address
        )
    return options.handshake(raw, remaining, address=address)


def _host_port(hostname: str | None, port_: Any) -> str:
    if hostname is None:
        return f"port {port_}"
    if ":" in hostname:
        return f"[{hostname}]:{port_}"
    return f"{hostname}:{port_}"


def _bind_tuple(bind_address: Any) -> Any:
    if isinstance(bind_address, str):
        return (bind_address, 0)
    return bind_address


def _bind_text(bind_address: Any) -> str | None:
    if bind_address is None:
        return None
    if isinstance(bind_address, dict) and not any(port_ for _, port_ in bind_address.values()):
        return ",".join(host_ for host_, _ in bind_address.values())  # HostnameEndpoint's
    if isinstance(bind_address, tuple) and len(bind_address) == 2 and bind_address[1] == 0:
        return str(bind_address[0])
    if isinstance(bind_address, str):
        return bind_address
    raise ValueError(f"bind address {bind_address!r} has no description form")


def _pem_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _client_option_keys(
    options: ClientTLSOptions, *, trust_key: str, cert_key: str
) -> dict[str, Any]:
    """Description keys (only non-default ones) for client options."""
    keys: dict[str, Any] = {}
    if _pem_text(options.certificate):
        keys[cert_key] = options.certificate
    # Also when it names the certificate's file: left out, it would parse back as
    # None ("the key is in the certificate file"), an unequal options value.
    if _pem_text(options.private_key):
        keys["privateKey"] = options.private_key
    if _pem_text(options.trust_root):
        keys[trust_key] = options.trust_root
    if options.alpn:
        keys["alpn"] = ",".join(options.alpn)
    if options.minimum_version != DEFAULT_MINIMUM_VERSION:
        keys["minimumVersion"] = options.minimum_version
    if not options.verify:
        keys["verify"] = "no"
    return keys


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
    prefix: ClassVar[str] = "ssl"

    def __post_init__(self) -> None:
        self.tls_options = _tls().client_options_for(self.tls_options, self.host)
        self._tcp()  # a bad host, port or bind address is refused now, not at open()

    def _tcp(self) -> Any:
        """The TCP endpoint under TLS (its deadline is given to its ``open``)."""
        from greenpoint.endpoints.tcp import TCP4ClientEndpoint, TCP6ClientEndpoint

        family = TCP6ClientEndpoint if ":" in self.host else TCP4ClientEndpoint
        return family(self.host, self.port, bind_address=self.bind_address)

    def open(self, timeout: float | None = None) -> TLSStream:
        """Connect, handshake and verify; blocks only the calling greenlet.

        Raises:
            ConnectError: the TCP connection failed.
            TLSVerificationError: the certificate was refused (``.reason``).
            TLSError: the handshake failed otherwise.
            ConnectTimeoutError: ``timeout`` (or the endpoint's) passed first.
        """
        total = self.timeout if timeout is None else timeout
        address = _host_port(self.host, self.port)
        return _open_then_handshake(self._tcp(), self.tls_options, total, address)

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        options = self.tls_options
        keys: dict[str, Any] = {}
        if self.timeout != DEFAULT_TIMEOUT:
            keys["timeout"] = self.timeout
        bind = _bind_text(self.bind_address)
        if bind is not None:
            keys["bindAddress"] = bind
        if options.hostname != self.host:
            keys["hostname"] = options.hostname
        keys.update(_client_option_keys(options, trust_key="caCertsDir", cert_key="certKey"))
        return "ssl", (self.host, self.port), keys


@dataclasses.dataclass(eq=True)
class TLSWrapperClientEndpoint(ClientEndpoint):
    """TLS over whatever ``endpoint.open()`` returns (see :func:`wrap_client_tls`)."""

    tls_options: ClientTLSOptions
    endpoint: Any
    timeout: float | None = None
    prefix: ClassVar[str] = "tls"

    def __post_init__(self) -> None:
        self.tls_options = _tls().client_options_for(
            self.tls_options, getattr(self.endpoint, "host", None)
        )

    def _address(self) -> str:
        port_ = getattr(self.endpoint, "port", None)
        hostname = self.tls_options.hostname
        return _host_port(hostname, port_) if port_ is not None else str(hostname)

    def open(self, timeout: float | None = None) -> TLSStream:
        """Open the inner endpoint and handshake, within one deadline.

        ``timeout`` defaults to this endpoint's, else the inner endpoint's.
        """
        if timeout is None:
            timeout = self.timeout
        if timeout is None:
            timeout = getattr(self.endpoint, "timeout", DEFAULT_TIMEOUT)
        return _open_then_handshake(self.endpoint, self.tls_options, timeout, self._address())

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        options = self.tls_options
        keys = _client_option_keys(options, trust_key="trustRoots", cert_key="certificate")
        inner = self.endpoint
        # tls:host:port parses to a wrapper without a timeout of its own (the inner
        # HostnameEndpoint has it); a wrapper that has one keeps the endpoint= form.
        plain = _is_plain_hostname_endpoint(inner) and self.timeout is None
        if plain and inner.host == options.hostname:
            head: dict[str, Any] = {}
            if inner.timeout != DEFAULT_TIMEOUT:
                head["timeout"] = inner.timeout
            bind = _bind_text(inner.bind_address)
            if bind is not None:
                head["bindAddress"] = bind
            return "tls", (inner.host, inner.port), {**head, **keys}
        head = {"endpoint": str(inner)}
        if self.timeout is not None:
            head["timeout"] = self.timeout
        return "tls", (options.hostname,), {**head, **keys}


def _is_plain_hostname_endpoint(endpoint: Any) -> bool:
    """A HostnameEndpoint with nothing a ``tls:host:port`` string cannot say."""
    from greenpoint.endpoints.hostname import HostnameEndpoint

    if not (
        type(endpoint) is HostnameEndpoint
        and getattr(endpoint, "resolver", None) is None
        and getattr(endpoint, "attempt_delay", 0.25) == 0.25
    ):
        return False
    try:  # a bind port cannot be said in tls:'s own keys; endpoint= can say it
        _bind_text(endpoint.bind_address)
    except ValueError:
        return False
    return True


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
    options = _tls().server_options_for(options)
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
    prefix: ClassVar[str] = "ssl"

    def __post_init__(self) -> None:
        self.tls_options = _tls().server_options_for(self.tls_options)

    def bind(self) -> TLSListener:
        """Read the certificates, bind and listen; returns a TLS listener."""
        from greenpoint.endpoints.tcp import TCP4ServerEndpoint, TCP6ServerEndpoint

        options = _loaded(self.tls_options, f"ssl:{self.port}")
        family = TCP6ServerEndpoint if ":" in self.interface else TCP4ServerEndpoint
        inner = family(self.port, backlog=self.backlog, interface=self.interface).bind()
        return TLSListener(inner, options, self.handshake_timeout)

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        options = self.tls_options
        keys: dict[str, Any] = {}
        if self.interface:
            keys["interface"] = self.interface
        if self.backlog != DEFAULT_BACKLOG:
            keys["backlog"] = self.backlog
        if isinstance(options, _tls().ServerTLSOptions):
            certificate = _pem_text(options.certificate)
            key = _pem_text(options.private_key) or certificate
            if key is not None and key != _DEFAULT_SERVER_PEM:
                keys["privateKey"] = key
            if certificate is not None and certificate != key:
                keys["certKey"] = certificate
            if _pem_text(options.extra_chain):
                keys["extraCertChain"] = options.extra_chain
        keys.update(_server_option_keys(options, self.handshake_timeout))
        return "ssl", (self.port,), keys


@dataclasses.dataclass(eq=True)
class TLSWrapperServerEndpoint(ServerEndpoint):
    """TLS over every connection ``endpoint`` accepts (see :func:`wrap_server_tls`)."""

    tls_options: Any
    endpoint: Any
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    prefix: ClassVar[str] = "tls"

    def __post_init__(self) -> None:
        self.tls_options = _tls().server_options_for(self.tls_options)

    def bind(self) -> TLSListener:
        """Read the certificates, bind the inner endpoint; returns a TLS listener."""
        options = _loaded(self.tls_options, str(self))
        return TLSListener(self.endpoint.bind(), options, self.handshake_timeout)

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        options = self.tls_options
        inner = self.endpoint
        if not isinstance(options, _tls().SNIServerOptions) or not _is_tcp_server(inner):
            raise ValueError(
                "only a PEM directory over TCP (tls:DIRECTORY:port=...) has a description"
            )
        keys: dict[str, Any] = {}
        if inner.port != 443:
            keys["port"] = inner.port
        if inner.backlog != DEFAULT_BACKLOG:
            keys["backlog"] = inner.backlog
        if inner.interface != "::":
            keys["interface"] = inner.interface
        keys.update(_server_option_keys(options, self.handshake_timeout))
        return "tls", (options.directory,), keys

    def __str__(self) -> str:
        try:
            return super().__str__()
        except ValueError:
            return repr(self)


def _is_tcp_server(endpoint: Any) -> bool:
    """A TCP server endpoint that a ``tls:`` description can say."""
    from greenpoint.endpoints.tcp import TCP4ServerEndpoint, TCP6ServerEndpoint

    if type(endpoint) is TCP6ServerEndpoint:
        return not endpoint.ipv6only and not endpoint.reuse_port
    if type(endpoint) is TCP4ServerEndpoint:
        return bool(endpoint.interface) and not endpoint.reuse_port
    return False


def _server_option_keys(options: Any, handshake_timeout: float | None) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if handshake_timeout != DEFAULT_HANDSHAKE_TIMEOUT:
        keys["handshakeTimeout"] = 0 if handshake_timeout is None else handshake_timeout
    if not isinstance(options, _tls().ServerTLSOptions | _tls().SNIServerOptions):
        return keys
    if _pem_text(options.dh_parameters):
        keys["dhParameters"] = options.dh_parameters
    if options.alpn:
        keys["alpn"] = ",".join(options.alpn)
    if _pem_text(options.client_ca):
        keys["clientCA"] = options.client_ca
    if not options.require_client_certificate:  # with or without clientCA, to round-trip
        keys["requireClientCertificate"] = "no"
    if options.minimum_version != DEFAULT_MINIMUM_VERSION:
        keys["minimumVersion"] = options.minimum_version
    if options.reload_interval != DEFAULT_RELOAD_INTERVAL:
        keys["reloadInterval"] = 0 if options.reload_interval is None else options.reload_interval
    return keys


def wrap_server_tls(
    tls_options: Any, endpoint: Any, handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
) -> TLSWrapperServerEndpoint:
    """A server endpoint that speaks TLS on every connection ``endpoint`` accepts.

    The handshake runs in each connection's greenlet (``prepare``) and must end
    within ``handshake_timeout`` seconds (``None``: no limit, not recommended).
    """
    return TLSWrapperServerEndpoint(tls_options, endpoint, handshake_timeout)


# -- descriptions ----------------------------------------------------------

_DEFAULT_SERVER_PEM = "server.pem"  # Twisted's default privateKey for ssl: servers


def _alpn(value: str) -> tuple[str, ...]:
    names = normalize_alpn(value)
    if not names:
        raise ValueError("expected protocol names separated by commas, such as h2,http/1.1")
    return names


def _seconds_or_none(value: str) -> float | None:
    """Seconds; ``0`` means no limit."""
    seconds = number(value)
    return None if seconds == 0 else seconds


def _path(value: str) -> str:
    if not value:
        raise ValueError("expected a file or directory path")
    return value


# sslmethod names (pyOpenSSL constants) -> the minimum version they now mean.
_SSL_METHODS = {
    "sslv23_method": DEFAULT_MINIMUM_VERSION,
    "tls_method": DEFAULT_MINIMUM_VERSION,
    "tls_server_method": DEFAULT_MINIMUM_VERSION,
    "tlsv1_2_method": "TLSv1.2",
}
_OLD_METHODS = {"sslv2_method", "sslv3_method", "tlsv1_method", "tlsv1_1_method"}


def _ssl_method(value: str) -> str:
    key = value.strip().lower()
    if key in _SSL_METHODS:
        return _SSL_METHODS[key]
    if key in _OLD_METHODS:
        raise ValueError(
            f"{value} allows protocol versions older than TLS 1.2, which greenpoint does not "
            "speak (RFC 8996); drop sslmethod or use minimumVersion=TLSv1.3"
        )
    raise ValueError("expected SSLv23_METHOD, TLS_METHOD or TLSv1_2_METHOD")


def _one_of(prefix: str, **given: Any) -> Any:
    present = {name: value for name, value in given.items() if value is not None}
    if len(present) > 1:
        names = " and ".join(present)
        raise DescriptionError(
            f"{prefix}: give only one of {names} (they mean the same thing)",
            prefix=prefix,
            parameter=list(present)[1],
        )
    return next(iter(present.values()), None)


def _client_tls_params() -> tuple[Param, ...]:
    return (
        Param("alpn", _alpn, None, help="ALPN protocols to offer, e.g. h2,http/1.1"),
        Param(
            "minimumVersion",
            normalize_tls_version,
            DEFAULT_MINIMUM_VERSION,
            target="minimum_version",
            help="TLSv1.2 or TLSv1.3",
        ),
        Param("verify", boolean, True, help="verify the server (turning it off logs a warning)"),
    )


def _build_client_options(
    prefix: str, hostname: str, certificate: Any, private_key: Any, trust: Any, **tls: Any
) -> ClientTLSOptions:
    alpn = tls.pop("alpn") or ()
    try:
        return _tls().ClientTLSOptions(
            hostname,
            trust_root=trust,
            certificate=certificate,
            private_key=private_key,
            alpn=alpn,
            **tls,
        )
    except ValueError as exc:
        raise DescriptionError(f"{prefix}: {exc}", prefix=prefix) from exc


def _build_ssl_client(
    host: str,
    port: int,
    timeout: float,
    bind_address: str | None,
    cert_key: str | None,
    private_key: str | None,
    ca_certs_dir: str | None,
    trust_roots: str | None,
    hostname: str | None,
    **tls: Any,
) -> SSL4ClientEndpoint:
    trust = _one_of("ssl", caCertsDir=ca_certs_dir, trustRoots=trust_roots)
    options = _build_client_options("ssl", hostname or host, cert_key, private_key, trust, **tls)
    try:
        return SSL4ClientEndpoint(
            host, port, options, timeout=timeout, bind_address=_bind_tuple(bind_address)
        )
    except ValueError as exc:  # the TCP half refused a value (a bind address's family)
        key = _TCP_KEYS.get(getattr(exc, "field", ""), "bindAddress")
        raise DescriptionError(f"ssl: bad {key}: {exc}", prefix="ssl", parameter=key) from exc


_TCP_KEYS = {"host": "host", "port": "port", "bind_address": "bindAddress"}


def _build_tls_client(
    host: str,
    port: int | None,
    timeout: float | None,
    bind_address: str | None,
    certificate: str | None,
    private_key: str | None,
    trust_roots: str | None,
    ca_certs_dir: str | None,
    endpoint: str | None,
    **tls: Any,
) -> TLSWrapperClientEndpoint:
    trust = _one_of("tls", trustRoots=trust_roots, caCertsDir=ca_certs_dir)
    options = _build_client_options("tls", host, certificate, private_key, trust, **tls)
    if endpoint is not None:
        if bind_address is not None:
            raise DescriptionError(
                "tls: bindAddress belongs in the nested endpoint= description",
                prefix="tls",
                parameter="bindAddress",
            )
        try:
            inner = client_from_string(endpoint)
        except DescriptionError as exc:
            raise DescriptionError(
                f"tls: bad endpoint={endpoint!r}: {exc}", prefix="tls", parameter="endpoint"
            ) from exc
        # Twisted's strings carry a port even with endpoint=; it is not used.
        return TLSWrapperClientEndpoint(options, inner, timeout=timeout)
    if port is None:
        raise DescriptionError(
            "tls: missing port (or a nested endpoint=)", prefix="tls", parameter="port"
        )
    from greenpoint.endpoints.hostname import HostnameEndpoint

    inner = HostnameEndpoint(
        host,
        port,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        bind_address=bind_address,  # one address, or one per family: "a,b"
    )
    return TLSWrapperClientEndpoint(options, inner)


_SSL_CLIENT = EndpointParser(
    "ssl",
    (
        Param("host", host, positional=True, help="server host name or address"),
        Param("port", port, positional=True, help="server port"),
        Param("timeout", number, DEFAULT_TIMEOUT, help="seconds for connect and handshake"),
        Param("bindAddress", host, None, target="bind_address", help="local address"),
        Param("certKey", _path, None, target="cert_key", help="client certificate PEM"),
        Param("privateKey", _path, None, target="private_key", help="client key PEM"),
        Param("caCertsDir", _path, None, target="ca_certs_dir", help="CA PEM file or directory"),
        Param("trustRoots", _path, None, target="trust_roots", help="same as caCertsDir"),
        Param("hostname", host, None, help="name to verify and send as SNI (default: host)"),
        *_client_tls_params(),
    ),
    _build_ssl_client,
    "TCP then TLS to host:port, verified against the system (or given) CAs",
)

_TLS_CLIENT = EndpointParser(
    "tls",
    (
        Param("host", host, positional=True, help="server name: verified and sent as SNI"),
        Param("port", port, None, positional=True, help="server port"),
        Param("timeout", number, None, help="seconds for connect and handshake (default 30)"),
        Param("bindAddress", host, None, target="bind_address", help="local address"),
        Param("certificate", _path, None, help="client certificate PEM"),
        Param("privateKey", _path, None, target="private_key", help="client key PEM"),
        Param("trustRoots", _path, None, target="trust_roots", help="CA PEM file or directory"),
        Param("caCertsDir", _path, None, target="ca_certs_dir", help="same as trustRoots"),
        Param("endpoint", text, None, help="nested client description to run TLS over"),
        *_client_tls_params(),
    ),
    _build_tls_client,
    "TLS over happy-eyeballs TCP (or over endpoint=), verified",
)


def _server_tls_params() -> tuple[Param, ...]:
    return (
        Param("dhParameters", _path, None, target="dh_parameters", help="DH parameters PEM"),
        Param("alpn", _alpn, None, help="ALPN protocols served, favourite first"),
        Param("clientCA", _path, None, target="client_ca", help="CA PEM for client certificates"),
        Param(
            "requireClientCertificate",
            boolean,
            True,
            target="require_client_certificate",
            help="with clientCA: refuse clients without a certificate",
        ),
        Param(
            "handshakeTimeout",
            _seconds_or_none,
            DEFAULT_HANDSHAKE_TIMEOUT,
            target="handshake_timeout",
            help="seconds a client has for its handshake (0: no limit)",
        ),
        Param(
            "reloadInterval",
            _seconds_or_none,
            DEFAULT_RELOAD_INTERVAL,
            target="reload_interval",
            help="seconds between checks of the PEM files (0: never)",
        ),
    )


def _build_ssl_server(
    port: int,
    private_key: str,
    cert_key: str | None,
    extra_cert_chain: str | None,
    ssl_method: str | None,
    minimum_version: str | None,
    interface: str,
    backlog: int,
    handshake_timeout: float | None,
    alpn: tuple[str, ...] | None,
    **tls: Any,
) -> SSL4ServerEndpoint:
    version = _one_of("ssl", sslmethod=ssl_method, minimumVersion=minimum_version)
    options = _tls().ServerTLSOptions(
        certificate=cert_key or private_key,
        private_key=private_key,
        extra_chain=extra_cert_chain,
        alpn=alpn or (),
        minimum_version=version or DEFAULT_MINIMUM_VERSION,
        **tls,
    )
    return SSL4ServerEndpoint(
        port, options, backlog=backlog, interface=interface, handshake_timeout=handshake_timeout
    )


def _build_tls_server(
    path: str,
    port: int,
    backlog: int,
    interface: str,
    handshake_timeout: float | None,
    alpn: tuple[str, ...] | None,
    minimum_version: str,
    **tls: Any,
) -> TLSWrapperServerEndpoint:
    from greenpoint.endpoints.tcp import TCP4ServerEndpoint, TCP6ServerEndpoint

    options = _tls().SNIServerOptions(path, alpn=alpn or (), minimum_version=minimum_version, **tls)
    # The default "::" is dual-stack (IPv4 clients too); an IPv4 interface can
    # only mean an IPv4 socket, as for tcp:.
    family = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
    inner = family(port, backlog=backlog, interface=interface)
    return TLSWrapperServerEndpoint(options, inner, handshake_timeout)


_SSL_SERVER = EndpointParser(
    "ssl",
    (
        Param("port", port, positional=True, help="TCP port to listen on"),
        Param(
            "privateKey",
            _path,
            _DEFAULT_SERVER_PEM,
            target="private_key",
            help="key PEM (also the certificate when certKey is not given)",
        ),
        Param("certKey", _path, None, target="cert_key", help="certificate PEM"),
        Param("extraCertChain", _path, None, target="extra_cert_chain", help="intermediates PEM"),
        Param("sslmethod", _ssl_method, None, target="ssl_method", help="legacy: TLS_METHOD"),
        Param(
            "minimumVersion",
            normalize_tls_version,
            None,
            target="minimum_version",
            help="TLSv1.2 (default) or TLSv1.3",
        ),
        Param("interface", ip_literal, "", help="local address (default: all IPv4)"),
        Param("backlog", integer(0), DEFAULT_BACKLOG, help="listen backlog"),
        *_server_tls_params(),
    ),
    _build_ssl_server,
    "TLS on a TCP port with one certificate",
)

_TLS_SERVER = EndpointParser(
    "tls",
    (
        Param("path", _path, positional=True, help="directory of PEM files, one per name"),
        Param("port", port, 443, positional=True, help="TCP port to listen on"),
        Param("backlog", integer(0), DEFAULT_BACKLOG, help="listen backlog"),
        Param("interface", ip_literal, "::", help="local address (default: all, dual stack)"),
        Param(
            "minimumVersion",
            normalize_tls_version,
            DEFAULT_MINIMUM_VERSION,
            target="minimum_version",
            help="TLSv1.2 or TLSv1.3",
        ),
        *_server_tls_params(),
    ),
    _build_tls_server,
    "TLS with a certificate per SNI name from a PEM directory, reloaded on change",
)

CLIENT_PARSERS = {"ssl": _SSL_CLIENT, "tls": _TLS_CLIENT}
SERVER_PARSERS = {"ssl": _SSL_SERVER, "tls": _TLS_SERVER}
