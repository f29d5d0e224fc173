"""TLS options and streams (pyOpenSSL), for clients and servers.

Clients::

    options = options_for_client_tls("example.com")           # system trust roots
    options = options_for_client_tls("localhost", trust_root="ca.pem", alpn=["h2"])
    stream = wrap_client_tls(options, some_endpoint).open()

Verification is always on unless you pass ``verify=False`` (which logs a warning):
the chain against the trust roots, then the host name or IP address with
``service_identity`` (RFC 6125). ``open()`` returns only after both succeeded.

Servers::

    options = options_for_server_tls("cert-and-key.pem", alpn=["h2", "http/1.1"])
    options = SNIServerOptions("/etc/greenpoint/certs")        # one PEM per site

Both re-read their files when they change (checked at most every
``reload_interval`` seconds, on new connections) or when you call ``reload()``.

Every options class also takes a ready ``OpenSSL.SSL.Context`` (``context=``) for
people who already build their own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from typing import Any, cast

from OpenSSL import SSL

from greenpoint._checks import check_timeout
from greenpoint._clock import MONOTONIC, Clock, check_clock
from greenpoint._reload import ReloadingValue, file_fingerprint
from greenpoint._sni import Identity, SNIStore
from greenpoint._tls_context import (
    TLS_VERSIONS,
    PemSource,
    check_cipher_settings,
    client_context,
    load_certificate_and_key,
    load_certificates,
    read_passphrase,
    server_context,
)
from greenpoint._tls_pins import check_pins
from greenpoint._tls_resume import SessionCache
from greenpoint._tls_settings import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MINIMUM_VERSION,
    DEFAULT_RELOAD_INTERVAL,
    check_version_range,
    normalize_alpn,
    normalize_ciphers,
    normalize_groups,
    normalize_pins,
    normalize_tls_version,
)
from greenpoint._tls_stream import TLSStream, client_handshake, server_handshake
from greenpoint._tls_verify import (
    encode_server_name,
    is_ip_literal,
    server_name_to_send,
    verify_callback,
)

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MINIMUM_VERSION",
    "DEFAULT_RELOAD_INTERVAL",
    "TLS_VERSIONS",
    "ClientTLSOptions",
    "PemSource",
    "SNIServerOptions",
    "ServerTLSOptions",
    "TLSStream",
    "options_for_client_tls",
    "options_for_server_tls",
    "optionsForClientTLS",
    "wrap_client_stream",
    "wrap_server_stream",
]

log = logging.getLogger("greenpoint.tls")


def _path_or_pem(value: Any) -> Any:
    """Keep bytes (PEM data) and text paths; turn ``PathLike`` into ``str``."""
    if value is None or isinstance(value, bytes | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _normalize_shared(options: Any) -> None:
    """Check and normalise the settings clients and servers share (frozen ``options``)."""
    set_ = object.__setattr__
    set_(options, "minimum_version", normalize_tls_version(options.minimum_version))
    if options.maximum_version is not None:
        set_(options, "maximum_version", normalize_tls_version(options.maximum_version))
    check_version_range(options.minimum_version, options.maximum_version)
    set_(options, "ciphers", normalize_ciphers(options.ciphers))
    set_(options, "groups", normalize_groups(options.groups))
    check_cipher_settings(options.ciphers, options.groups)


def _passphrase_settings(options: Any) -> None:
    if options.passphrase_file is not None and options.passphrase_env is not None:
        raise ValueError("give only one of passphrase_file and passphrase_env")


def _paths(*values: Any) -> list[str]:
    return [value for value in values if isinstance(value, str)]


def _repr_without_pem(options: Any) -> str:
    """The dataclass repr, with PEM data summarised: it may hold a private key.

    An options object's repr ends up in error messages (``ListenError`` names the
    endpoint) and logs; file paths are shown, file contents never.
    """
    parts = []
    for field in dataclasses.fields(options):
        if field.repr:
            value = getattr(options, field.name)
            shown = f"<PEM data, {len(value)} bytes>" if isinstance(value, bytes) else repr(value)
            parts.append(f"{field.name}={shown}")
    return f"{type(options).__name__}({', '.join(parts)})"


@dataclasses.dataclass(frozen=True)
class ClientTLSOptions:
    """How a client does TLS: whom it expects, whom it trusts, what it offers.

    Build one with :func:`options_for_client_tls` (which loads the files at once)
    or directly (files are read on first use). Equal options compare equal, so
    endpoints built from the same description compare equal.

    Args:
        hostname: the name (or IP address) the server's certificate must match;
            also sent as SNI when it is a name.
        trust_root: CA certificates to trust: a PEM file, a directory of PEM files,
            PEM ``bytes``, a ``cryptography`` certificate or a list of these;
            ``None`` for the system's roots.
        certificate, private_key: a client certificate (PEM path or bytes; the key
            may sit in the certificate file).
        alpn: protocols to offer, most wanted first (``"h2"``, ``"http/1.1"``).
        minimum_version: ``"TLSv1.2"`` (default) or ``"TLSv1.3"``.
        verify: ``False`` turns all verification off. Never the default; it logs
            a warning when the context is built.
        send_server_name: force SNI on or off (default: on for names, off for IP
            literals, RFC 6066 §3).
        context: a ready ``OpenSSL.SSL.Context`` to use as is; the host name is
            still checked after the handshake unless ``verify=False``.
        maximum_version: ``None`` (the newest OpenSSL speaks), ``"TLSv1.2"`` or
            ``"TLSv1.3"``.
        ciphers: an OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are not
            affected), names separated by commas.
        groups: key-exchange groups offered, in order (``("X25519", "P-256")``).
        passphrase_file, passphrase_env: where the passphrase of an encrypted
            ``private_key`` is read (a file's first line, an environment variable).
        pins: ``sha256/BASE64`` public-key pins (see ``greenpoint._tls_pins``): in
            addition to CA verification, or, with ``verify=False``, instead of it.

    Sessions are resumed: each handshake offers the session of the last connection
    made with these options (``TLSStream.session_reused`` tells whether it was).
    ``$SSLKEYLOGFILE``, if set when the context is built, receives the secrets.
    """

    hostname: str | None
    trust_root: Any = None
    certificate: PemSource | None = None
    private_key: PemSource | None = None
    alpn: tuple[str, ...] = ()
    minimum_version: str = DEFAULT_MINIMUM_VERSION
    verify: bool = True
    send_server_name: bool | None = None
    context: SSL.Context | None = None
    maximum_version: str | None = None
    ciphers: str | None = None
    groups: tuple[str, ...] = ()
    passphrase_file: str | None = None
    passphrase_env: str | None = None
    pins: tuple[str, ...] = ()
    _cache: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    __repr__ = _repr_without_pem

    def __post_init__(self) -> None:
        _normalize_shared(self)
        _passphrase_settings(self)
        object.__setattr__(self, "pins", normalize_pins(self.pins))
        if isinstance(self.hostname, bytes):
            raise TypeError("hostname must be text (str), not bytes")
        if self.hostname is not None and not isinstance(self.hostname, str):
            raise TypeError(
                f"hostname must be a str (or None), not {type(self.hostname).__name__} "
                f"{self.hostname!r}"
            )
        if self.hostname is not None and not self.hostname.strip():
            raise ValueError("hostname must not be empty")
        if self.hostname is not None and not is_ip_literal(self.hostname):
            encode_server_name(self.hostname)  # refuse a name IDNA cannot encode, now
        set_ = object.__setattr__
        set_(self, "alpn", normalize_alpn(self.alpn))
        set_(self, "trust_root", _path_or_pem(self.trust_root))
        set_(self, "certificate", _path_or_pem(self.certificate))
        set_(self, "private_key", _path_or_pem(self.private_key))
        if isinstance(self.trust_root, list):
            set_(self, "trust_root", tuple(self.trust_root))
        if self.verify and self.hostname is None and not self.pins:
            raise ValueError(
                "a hostname is needed to verify the server; pass verify=False to skip "
                "verification knowingly"
            )
        context = self.context
        if context is not None and self.verify and not context.get_verify_mode() & SSL.VERIFY_PEER:
            raise ValueError(
                "the given context does not verify the server (VERIFY_NONE); "
                "set VERIFY_PEER on it, or pass verify=False knowingly"
            )
        # Known once (the options are frozen), not worked out again per handshake.
        self._cache["server_name"] = server_name_to_send(self.hostname, self.send_server_name)
        self._cache["sessions"] = SessionCache()

    def get_context(self) -> SSL.Context:
        """The ``OpenSSL.SSL.Context`` (built once, on first use)."""
        context = self._cache.get("context")
        if context is None:
            if not self.verify and self.pins:
                log.info(
                    "TLS: %s is checked by public-key pin only (no CA, no host name)",
                    self.hostname or "this client",
                )
            elif not self.verify:
                log.warning(
                    "TLS certificate verification is OFF for %s: anyone on the path "
                    "can read and change this connection",
                    self.hostname or "this client",
                )
            context = self.context
            if context is None:
                context = client_context(
                    trust_root=self.trust_root,
                    certificate=self.certificate,
                    private_key=self.private_key,
                    alpn=self.alpn,
                    minimum_version=self.minimum_version,
                    verify=self.verify,
                    verify_callback=verify_callback,
                    maximum_version=self.maximum_version,
                    ciphers=self.ciphers,
                    groups=self.groups,
                    passphrase=read_passphrase(self.passphrase_file, self.passphrase_env),
                )
            self._cache["context"] = context
        return context

    def handshake(
        self, raw: Any, timeout: float | None = None, address: Any = None, *, nodelay: bool = True
    ) -> TLSStream:
        """Run the client handshake over a connected stream; close it on failure.

        Blocks the calling greenlet for at most ``timeout`` seconds. ``nodelay=False``
        leaves ``TCP_NODELAY`` as it is (otherwise it is turned on).

        Raises:
            TLSVerificationError: the certificate was refused (``.reason`` says why).
            TLSError: the handshake failed otherwise.
            ConnectTimeoutError: ``timeout`` passed first.
        """
        try:
            context = self.get_context()
        except BaseException:
            raw.close()
            raise
        return self.handshake_in(context, raw, timeout, address, nodelay)

    def handshake_in(
        self, context: SSL.Context, raw: Any, timeout: float | None, address: Any, nodelay: bool
    ) -> TLSStream:
        """:meth:`handshake` with the context :meth:`get_context` gave (endpoints ask
        for it before they connect)."""
        address = address if address is not None else self.hostname
        cache = self._cache
        sessions: SessionCache = cache["sessions"]
        stream = client_handshake(
            raw,
            context,
            hostname=self.hostname,
            server_name=cache["server_name"],
            check_hostname_after=self.context is not None and self.verify,
            timeout=timeout,
            address=address,
            nodelay=nodelay,
            session=sessions.offer(),
        )
        if self.pins:
            check_pins(stream, self.pins, verified=self.verify, address=address)
        sessions.remember(stream)
        return stream


def options_for_client_tls(
    hostname: str,
    trust_root: Any = None,
    client_certificate: Any = None,
    alpn: Iterable[str] | str | None = (),
    *,
    minimum_version: str = DEFAULT_MINIMUM_VERSION,
    verify: bool = True,
    send_server_name: bool | None = None,
    context: SSL.Context | None = None,
    **settings: Any,
) -> ClientTLSOptions:
    """Client options that verify ``hostname``; files are loaded now (errors now).

    ``settings`` are the other :class:`ClientTLSOptions` fields (``maximum_version``,
    ``ciphers``, ``groups``, ``passphrase_file``, ``passphrase_env``, ``pins``).

    ``client_certificate`` is a PEM path or bytes holding the certificate and its
    key, or a ``(certificate, private_key)`` pair. See :class:`ClientTLSOptions`.
    """
    certificate = private_key = None
    if isinstance(client_certificate, tuple):
        certificate, private_key = client_certificate
    elif client_certificate is not None:
        certificate = client_certificate
    options = ClientTLSOptions(
        hostname,
        trust_root=trust_root,
        certificate=certificate,
        private_key=private_key,
        alpn=normalize_alpn(alpn),
        minimum_version=minimum_version,
        verify=verify,
        send_server_name=send_server_name,
        context=context,
        **settings,
    )
    options.get_context()
    return options


optionsForClientTLS = options_for_client_tls


class _ServerOptionsBase:
    """What every server options class offers the TLS listener."""

    # Settings every subclass has (as dataclass fields), whatever its certificates.
    dh_parameters: str | None
    alpn: tuple[str, ...]
    client_ca: Any
    require_client_certificate: bool
    minimum_version: str
    maximum_version: str | None
    ciphers: str | None
    groups: tuple[str, ...]

    def get_context(self) -> SSL.Context:  # pragma: no cover - overridden
        raise NotImplementedError

    def handshake(
        self, raw: Any, timeout: float | None = None, address: Any = None, *, nodelay: bool = True
    ) -> TLSStream:
        """Run the server handshake over an accepted stream; close it on failure."""
        try:
            context = self.get_context()
        except BaseException:
            raw.close()
            raise
        return server_handshake(raw, context, timeout=timeout, address=address, nodelay=nodelay)

    def _context_settings(self) -> dict[str, Any]:
        """The ``server_context`` keywords that apply to every certificate served."""
        return {
            "dh_parameters": self.dh_parameters,
            "alpn": self.alpn,
            "client_ca": self.client_ca,
            "require_client_certificate": self.require_client_certificate,
            "minimum_version": self.minimum_version,
            "maximum_version": self.maximum_version,
            "ciphers": self.ciphers,
            "groups": self.groups,
        }


@dataclasses.dataclass(frozen=True)
class ServerTLSOptions(_ServerOptionsBase):
    """How a server does TLS with one certificate.

    Args:
        certificate: PEM path or bytes; may also hold the key and the chain.
        private_key: PEM path or bytes of the key, if not in ``certificate``.
        extra_chain: PEM file of intermediate certificates to send after the leaf.
        dh_parameters: PEM file of DH parameters (enables DHE cipher suites).
        alpn: protocols the server speaks, its favourite first.
        client_ca: CA certificate(s) that sign acceptable client certificates
            (path, directory, bytes); ``None`` asks for no client certificate.
        require_client_certificate: with ``client_ca``, refuse clients that send
            none (default) or just verify the ones that do.
        minimum_version: ``"TLSv1.2"`` (default) or ``"TLSv1.3"``.
        reload_interval: seconds between looks at the files for changes (on new
            connections); ``None`` never looks (``reload()`` still works).
        context: a ready ``OpenSSL.SSL.Context`` to use as is.
        clock: the :class:`~greenpoint._clock.Clock` that ``reload_interval`` is
            measured on (tests pass ``greenpoint.testing.FakeClock``).
        maximum_version, ciphers, groups: as for :class:`ClientTLSOptions`.
        passphrase_file, passphrase_env: where the passphrase of an encrypted
            private key is read (re-read on each reload).
    """

    certificate: PemSource | None = None
    private_key: PemSource | None = None
    extra_chain: PemSource | None = None
    dh_parameters: str | None = None
    alpn: tuple[str, ...] = ()
    client_ca: Any = None
    require_client_certificate: bool = True
    minimum_version: str = DEFAULT_MINIMUM_VERSION
    reload_interval: float | None = DEFAULT_RELOAD_INTERVAL
    context: SSL.Context | None = None
    maximum_version: str | None = None
    ciphers: str | None = None
    groups: tuple[str, ...] = ()
    passphrase_file: str | None = None
    passphrase_env: str | None = None
    clock: Clock = dataclasses.field(default=MONOTONIC, compare=False, repr=False)
    _cache: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    __repr__ = _repr_without_pem

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "alpn", normalize_alpn(self.alpn))
        _normalize_shared(self)
        _passphrase_settings(self)
        check_clock(self.clock)
        for name in ("certificate", "private_key", "extra_chain", "dh_parameters", "client_ca"):
            set_(self, name, _path_or_pem(getattr(self, name)))
        if self.context is None and self.certificate is None:
            raise ValueError("a server needs a certificate (or a ready context=)")

    def _build(self) -> SSL.Context:
        passphrase = read_passphrase(self.passphrase_file, self.passphrase_env)
        # __post_init__ refused a server without a certificate or a context, and
        # _build is only called without a context.
        certificate = cast(PemSource, self.certificate)
        chain, key = load_certificate_and_key(certificate, self.private_key, passphrase)
        if self.extra_chain is not None:
            chain = chain + load_certificates(self.extra_chain, "extra certificate chain file")
        return server_context(chain, key, **self._context_settings())

    def _reloading(self) -> ReloadingValue:
        value = self._cache.get("value")
        if value is None:
            files = _paths(
                self.certificate,
                self.private_key,
                self.extra_chain,
                self.dh_parameters,
                self.client_ca,
                self.passphrase_file,
            )
            value = ReloadingValue(
                self._build,
                lambda: file_fingerprint(files),
                interval=self.reload_interval,
                clock=self.clock,
                what=f"TLS certificate {files[0] if files else 'PEM data'}",
            )
            self._cache["value"] = value
        return value

    def get_context(self) -> SSL.Context:
        """The context for the next connection (re-read if the files changed)."""
        if self.context is not None:
            return self.context
        # Called per connection: the cache lookup first, the method only once.
        context: SSL.Context = (self._cache.get("value") or self._reloading()).get()
        return context

    def reload(self) -> None:
        """Re-read the files now; errors propagate and the old context stays."""
        if self.context is None:
            self._reloading().reload()


def options_for_server_tls(
    certificate: PemSource | None = None,
    private_key: PemSource | None = None,
    *,
    extra_chain: PemSource | None = None,
    dh_parameters: str | None = None,
    alpn: Iterable[str] | str | None = (),
    client_ca: Any = None,
    require_client_certificate: bool = True,
    minimum_version: str = DEFAULT_MINIMUM_VERSION,
    reload_interval: float | None = DEFAULT_RELOAD_INTERVAL,
    context: SSL.Context | None = None,
    **settings: Any,
) -> ServerTLSOptions:
    """Server options for one certificate; files are loaded now (errors now).

    See :class:`ServerTLSOptions` for the arguments (``settings``: the rest).
    """
    options = ServerTLSOptions(
        certificate=certificate,
        private_key=private_key,
        extra_chain=extra_chain,
        dh_parameters=dh_parameters,
        alpn=normalize_alpn(alpn),
        client_ca=client_ca,
        require_client_certificate=require_client_certificate,
        minimum_version=minimum_version,
        reload_interval=reload_interval,
        context=context,
        **settings,
    )
    options.get_context()
    return options


@dataclasses.dataclass(frozen=True)
class SNIServerOptions(_ServerOptionsBase):
    """A server with one certificate per name, from a directory of PEM files.

    Each ``*.pem`` file under ``directory`` holds certificates and keys (see
    ``docs/tls.md``); the client's SNI name picks the certificate, with a wildcard
    fallback. The other arguments are those of :class:`ServerTLSOptions` and apply
    to every name.
    """

    directory: str
    dh_parameters: str | None = None
    alpn: tuple[str, ...] = ()
    client_ca: Any = None
    require_client_certificate: bool = True
    minimum_version: str = DEFAULT_MINIMUM_VERSION
    reload_interval: float | None = DEFAULT_RELOAD_INTERVAL
    maximum_version: str | None = None
    ciphers: str | None = None
    groups: tuple[str, ...] = ()
    clock: Clock = dataclasses.field(default=MONOTONIC, compare=False, repr=False)
    _cache: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "directory", os.fspath(self.directory))
        set_(self, "alpn", normalize_alpn(self.alpn))
        _normalize_shared(self)
        set_(self, "dh_parameters", _path_or_pem(self.dh_parameters))
        check_clock(self.clock)
        set_(self, "client_ca", _path_or_pem(self.client_ca))

    def _make_context(self, identity: Identity, on_server_name: Any) -> SSL.Context:
        return server_context(
            list(identity.chain),
            identity.key,
            servername_callback=on_server_name,
            **self._context_settings(),
        )

    def store(self) -> SNIStore:
        store = self._cache.get("store")
        if store is None:
            store = SNIStore(
                self.directory,
                self._make_context,
                interval=self.reload_interval,
                clock=self.clock,
            )
            self._cache["store"] = store
        return store

    def get_context(self) -> SSL.Context:
        """The context for the next connection (it switches certificate by SNI)."""
        return self.store().context()

    def reload(self) -> None:
        """Re-read the directory now; errors propagate and the old contexts stay."""
        self.store().reload()

    def server_names(self) -> list[str]:
        """The names served, as found in the certificates."""
        return sorted(self.store().names())


def wrap_client_stream(
    stream: Any,
    options: ClientTLSOptions,
    timeout: float | None = None,
    address: Any = None,
) -> TLSStream:
    """TLS over an already connected stream, as a client; returns once verified.

    ``stream`` may be a gevent socket (OpenSSL uses its descriptor) or any object
    with ``recv``/``sendall``/``close`` (ciphertext goes through memory BIOs).
    ``stream`` is closed on failure; a bad ``timeout`` (NaN, negative, not a
    number) raises ``ValueError``/``TypeError`` before the stream is touched.
    """
    check_timeout(timeout)
    tls_stream: TLSStream = options.handshake(stream, timeout, address)
    return tls_stream


def wrap_server_stream(
    stream: Any,
    options: Any,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    address: Any = None,
) -> TLSStream:
    """TLS over an accepted stream, as a server; ``stream`` is closed on failure.

    ``options`` is a :class:`ServerTLSOptions`, :class:`SNIServerOptions` or a
    ready ``OpenSSL.SSL.Context``.
    """
    check_timeout(timeout)
    if isinstance(options, SSL.Context):
        return server_handshake(stream, options, timeout=timeout, address=address)
    tls_stream: TLSStream = options.handshake(stream, timeout, address)
    return tls_stream


def client_options_for(options: Any, hostname: str | None) -> ClientTLSOptions:
    """Client options from options or a bare ``SSL.Context`` (checked against ``hostname``)."""
    if isinstance(options, ClientTLSOptions):
        return options
    if isinstance(options, SSL.Context):
        if hostname is None:
            raise TypeError(
                "a bare OpenSSL.SSL.Context does not say which host to verify; pass "
                "options_for_client_tls(hostname, context=ctx)"
            )
        return ClientTLSOptions(hostname, context=options)
    raise TypeError(
        "expected ClientTLSOptions (from options_for_client_tls) or an OpenSSL.SSL.Context, "
        f"not {type(options).__name__}"
    )


def server_options_for(options: Any) -> Any:
    """Server options from options or a bare ``SSL.Context``."""
    if isinstance(options, ServerTLSOptions | SNIServerOptions):
        return options
    if isinstance(options, SSL.Context):
        return ServerTLSOptions(context=options)
    raise TypeError(
        "expected ServerTLSOptions, SNIServerOptions or an OpenSSL.SSL.Context, "
        f"not {type(options).__name__}"
    )
