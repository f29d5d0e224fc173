"""The ``ssl:`` and ``tls:`` descriptions, and the TLS endpoint classes re-exported.

The classes (:class:`SSL4ClientEndpoint`, :class:`SSL4ServerEndpoint`,
:func:`wrap_client_tls`, :func:`wrap_server_tls` ...) live in
``greenpoint.endpoints._tls_endpoints``; this module turns a description string
into one of them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from greenpoint._defaults import DEFAULT_BACKLOG, DEFAULT_TIMEOUT
from greenpoint._params import (
    Param,
    boolean,
    file_path,
    host,
    integer,
    ip_literal,
    number,
    port,
    register_inverse,
    seconds_text,
    text,
)
from greenpoint._registry import EndpointParser, client_from_string
from greenpoint._sockopts import TCPOptions
from greenpoint._tls_settings import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MINIMUM_VERSION,
    DEFAULT_RELOAD_INTERVAL,
    TLSSettingError,
    normalize_alpn,
    normalize_ciphers,
    normalize_groups,
    normalize_pins,
    normalize_tls_version,
)
from greenpoint.endpoints._tls_endpoints import (
    DEFAULT_SERVER_PEM,
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    TLSWrapperClientEndpoint,
    TLSWrapperServerEndpoint,
    tcp_server_endpoint,
    tls_module,
    wrap_client_tls,
    wrap_server_tls,
    wrapClientTLS,
    wrapServerTLS,
)
from greenpoint.endpoints.tcp import socket_params, with_socket_options
from greenpoint.errors import DescriptionError

if TYPE_CHECKING:
    from greenpoint.tls import ClientTLSOptions

# Defined in the private module, imported from this one (greenpoint has the others).
TLSWrapperClientEndpoint.__module__ = TLSWrapperServerEndpoint.__module__ = __name__

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "TLSWrapperClientEndpoint",
    "TLSWrapperServerEndpoint",
    "wrapClientTLS",
    "wrapServerTLS",
    "wrap_client_tls",
    "wrap_server_tls",
]


def _alpn(value: str) -> tuple[str, ...]:
    names = normalize_alpn(value)
    if not names:
        raise ValueError("expected protocol names separated by commas, such as h2,http/1.1")
    return names


def _seconds_or_none(value: str) -> float | None:
    """Seconds; ``0`` means no limit."""
    seconds = number(value)
    return None if seconds == 0 else seconds


register_inverse(
    _seconds_or_none, lambda seconds: "0" if seconds is None else seconds_text(seconds)
)


def _positional(*params: Param) -> tuple[Param, ...]:
    """``params`` made positional too, in this order (Twisted's parser signatures)."""
    return tuple(dataclasses.replace(param, positional=True, in_form=False) for param in params)


_path = file_path  # files are read on first use; check reports the missing ones


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


def _one_of(prefix: str, why: str = "they mean the same thing", **given: Any) -> Any:
    present = {name: value for name, value in given.items() if value is not None}
    if len(present) > 1:
        names = " and ".join(present)
        raise DescriptionError(
            f"{prefix}: give only one of {names} ({why})",
            prefix=prefix,
            parameter=list(present)[1],
        )
    return next(iter(present.values()), None)


def _version_and_cipher_params() -> tuple[Param, ...]:
    """The keys clients and servers share beyond minimumVersion."""
    return (
        Param(
            "maximumVersion",
            normalize_tls_version,
            None,
            target="maximum_version",
            help="TLSv1.2 or TLSv1.3 (default: the newest)",
        ),
        Param(
            "ciphers",
            normalize_ciphers,
            None,
            help="OpenSSL cipher list for TLS 1.2, comma-separated (TLS 1.3 suites unchanged)",
        ),
        Param(
            "groups",
            normalize_groups,
            None,
            help="key-exchange groups in order, e.g. X25519,P-256",
        ),
    )


def _passphrase_params() -> tuple[Param, ...]:
    return (
        Param(
            "passphraseFile",
            _path,
            None,
            target="passphrase_file",
            help="file whose first line is the encrypted private key's passphrase",
        ),
        Param(
            "passphraseEnv",
            text,
            None,
            target="passphrase_env",
            help="environment variable holding the encrypted private key's passphrase",
        ),
    )


_ONE_PASSPHRASE = "a key has one passphrase"


def _client_tls_params() -> tuple[Param, ...]:
    return (
        *_version_and_cipher_params(),
        *_passphrase_params(),
        Param(
            "pin",
            normalize_pins,
            None,
            target="pins",
            help="sha256/BASE64 SPKI pins, comma-separated: checked as well as the CAs "
            "(with verify=0: instead of them)",
        ),
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
    tls["groups"] = tls["groups"] or ()
    tls["pins"] = tls["pins"] or ()
    _one_of(
        prefix,
        _ONE_PASSPHRASE,
        passphraseFile=tls["passphrase_file"],
        passphraseEnv=tls["passphrase_env"],
    )
    try:
        options: ClientTLSOptions = tls_module().ClientTLSOptions(
            hostname,
            trust_root=trust,
            certificate=certificate,
            private_key=private_key,
            alpn=alpn,
            **tls,
        )
        return options
    except TLSSettingError as exc:
        raise DescriptionError(f"{prefix}: {exc}", prefix=prefix, parameter=exc.key) from exc
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
    nodelay: bool,
    tcp_options: TCPOptions,
    **tls: Any,
) -> SSL4ClientEndpoint:
    trust = _one_of("ssl", caCertsDir=ca_certs_dir, trustRoots=trust_roots)
    options = _build_client_options("ssl", hostname or host, cert_key, private_key, trust, **tls)
    # A value the TCP half refuses (a bind address of the other family) raises a
    # FieldError, which the parser reports under its key.
    return SSL4ClientEndpoint(
        host,
        port,
        options,
        timeout=timeout,
        bind_address=bind_address,
        nodelay=nodelay,
        tcp_options=tcp_options,
    )


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
    nodelay: bool,
    tcp_options: TCPOptions,
    **tls: Any,
) -> TLSWrapperClientEndpoint:
    trust = _one_of("tls", trustRoots=trust_roots, caCertsDir=ca_certs_dir)
    options = _build_client_options("tls", host, certificate, private_key, trust, **tls)
    if endpoint is not None:
        socket_keys = tcp_options.description_keys()
        if not nodelay:
            socket_keys["nodelay"] = "0"
        for key in ("bindAddress", *socket_keys):
            if key in socket_keys or (key == "bindAddress" and bind_address is not None):
                raise DescriptionError(
                    f"tls: {key} belongs in the nested endpoint= description",
                    prefix="tls",
                    parameter=key,
                )
        try:
            inner = client_from_string(endpoint)
        except DescriptionError as exc:
            from greenpoint._redact import redact_description

            # The nested description may hold a proxy password: never show it.
            raise DescriptionError(
                f"tls: bad endpoint={redact_description(endpoint)!r}: "
                f"{redact_description(str(exc))}",
                prefix="tls",
                parameter="endpoint",
            ) from None
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
        nodelay=nodelay,
        tcp_options=tcp_options,
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
        *socket_params(),
    ),
    with_socket_options("ssl", _build_ssl_client),
    "TCP then TLS to host:port, verified against the system (or given) CAs",
)

_TLS_CLIENT = EndpointParser(
    "tls",
    (
        Param("host", host, positional=True, help="server name: verified and sent as SNI"),
        Param("port", port, None, positional=True, help="server port"),
        # Positional up to endpoint, as in Twisted's _parseClientTLS signature.
        *_positional(
            Param(
                "timeout",
                number,
                None,
                help="seconds for connect and handshake (with endpoint=: that endpoint's)",
                shown_default=f"{DEFAULT_TIMEOUT:g}",
            ),
            Param("bindAddress", host, None, target="bind_address", help="local address"),
            Param("certificate", _path, None, help="client certificate PEM"),
            Param("privateKey", _path, None, target="private_key", help="client key PEM"),
            Param("trustRoots", _path, None, target="trust_roots", help="CA PEM file or directory"),
            Param("endpoint", text, None, help="nested client description to run TLS over"),
        ),
        Param("caCertsDir", _path, None, target="ca_certs_dir", help="same as trustRoots"),
        *_client_tls_params(),
        *socket_params(),
    ),
    with_socket_options("tls", _build_tls_client),
    "TLS over happy-eyeballs TCP (or over endpoint=), verified",
)


def _server_options(prefix: str, build: Any, **settings: Any) -> Any:
    """``build(**settings)`` (a server options class), errors naming the key at fault."""
    settings["groups"] = settings.get("groups") or ()
    try:
        return build(**settings)
    except TLSSettingError as exc:
        raise DescriptionError(f"{prefix}: {exc}", prefix=prefix, parameter=exc.key) from exc


def _server_tls_params() -> tuple[Param, ...]:
    return (
        *_version_and_cipher_params(),
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
    nodelay: bool,
    tcp_options: TCPOptions,
    **tls: Any,
) -> SSL4ServerEndpoint:
    version = _one_of("ssl", sslmethod=ssl_method, minimumVersion=minimum_version)
    _one_of(
        "ssl",
        _ONE_PASSPHRASE,
        passphraseFile=tls["passphrase_file"],
        passphraseEnv=tls["passphrase_env"],
    )
    options = _server_options(
        "ssl",
        tls_module().ServerTLSOptions,
        certificate=cert_key or private_key,
        private_key=private_key,
        extra_chain=extra_cert_chain,
        alpn=alpn or (),
        minimum_version=version or DEFAULT_MINIMUM_VERSION,
        **tls,
    )
    return SSL4ServerEndpoint(
        port,
        options,
        backlog=backlog,
        interface=interface,
        handshake_timeout=handshake_timeout,
        nodelay=nodelay,
        tcp_options=tcp_options,
    )


def _build_tls_server(
    path: str,
    port: int,
    backlog: int,
    interface: str,
    handshake_timeout: float | None,
    alpn: tuple[str, ...] | None,
    minimum_version: str,
    nodelay: bool,
    tcp_options: TCPOptions,
    **tls: Any,
) -> TLSWrapperServerEndpoint:
    options = _server_options(
        "tls",
        tls_module().SNIServerOptions,
        directory=path,
        alpn=alpn or (),
        minimum_version=minimum_version,
        **tls,
    )
    # The default "::" is dual-stack (IPv4 clients too); an IPv4 interface can
    # only mean an IPv4 socket, as for tcp:.
    inner = tcp_server_endpoint(port, backlog, interface, nodelay=nodelay, tcp_options=tcp_options)
    return TLSWrapperServerEndpoint(options, inner, handshake_timeout)


_SSL_SERVER = EndpointParser(
    "ssl",
    (
        Param("port", port, positional=True, help="TCP port to listen on"),
        # Positional order as Twisted's _parseSSL (its last, dhParameters, is keyword-only).
        *_positional(
            Param(
                "privateKey",
                _path,
                DEFAULT_SERVER_PEM,
                target="private_key",
                help="key PEM (also the certificate when certKey is not given)",
            ),
            Param("certKey", _path, None, target="cert_key", help="certificate PEM"),
            Param("sslmethod", _ssl_method, None, target="ssl_method", help="legacy: TLS_METHOD"),
            Param("interface", ip_literal, "", help="local address (default: all IPv4)"),
            Param("backlog", integer(0), DEFAULT_BACKLOG, help="listen backlog"),
            Param(
                "extraCertChain", _path, None, target="extra_cert_chain", help="intermediates PEM"
            ),
        ),
        Param(
            "minimumVersion",
            normalize_tls_version,
            None,  # None: not given, so that sslmethod may say it instead
            target="minimum_version",
            help="TLSv1.2 or TLSv1.3 (or sslmethod)",
            shown_default=DEFAULT_MINIMUM_VERSION,
        ),
        *_server_tls_params(),
        *_passphrase_params(),
        *socket_params(),
    ),
    with_socket_options("ssl", _build_ssl_server),
    "TLS on a TCP port with one certificate",
)

_TLS_SERVER = EndpointParser(
    "tls",
    (
        Param("path", _path, positional=True, help="directory of PEM files, one per name"),
        Param("port", port, 443, positional=True, help="TCP port to listen on"),
        *_positional(  # as Twisted's _TLSServerEndpointParser: path, port, backlog, interface
            Param("backlog", integer(0), DEFAULT_BACKLOG, help="listen backlog"),
            Param("interface", ip_literal, "::", help="local address (default: all, dual stack)"),
        ),
        Param(
            "minimumVersion",
            normalize_tls_version,
            DEFAULT_MINIMUM_VERSION,
            target="minimum_version",
            help="TLSv1.2 or TLSv1.3",
        ),
        *_server_tls_params(),
        *socket_params(),
    ),
    with_socket_options("tls", _build_tls_server),
    "TLS with a certificate per SNI name from a PEM directory, reloaded on change",
)

CLIENT_PARSERS = {"ssl": _SSL_CLIENT, "tls": _TLS_CLIENT}
SERVER_PARSERS = {"ssl": _SSL_SERVER, "tls": _TLS_SERVER}
