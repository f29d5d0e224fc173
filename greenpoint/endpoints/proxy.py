"""Client endpoints through a proxy: SOCKS5, SOCKS4a and HTTP CONNECT.

Each takes the target (``host``, ``port``) and the proxy as another client endpoint
(so a proxy named by host name gets happy eyeballs, and a ``tls:`` endpoint reaches
a TLS proxy). ``open()`` opens the proxy endpoint, runs the handshake from the
sans-I/O modules (:mod:`greenpoint._socks`, :mod:`greenpoint._http_connect`) and
returns the proxy's stream, now a tunnel to the target. One deadline covers the
proxy connect and the handshake (and a ``tls:`` layered on top takes what is left).

Descriptions::

    socks5:HOST:PORT:proxy=[CLIENT][:user=U:password=P][:resolve=proxy|local]
    socks4a:HOST:PORT:proxy=[CLIENT][:user=ID][:resolve=proxy|local]
    httpconnect:HOST:PORT:proxy=[CLIENT][:user=U:password=P]

A password never appears in ``str(endpoint)``, ``repr()``, logs or errors: it is
written as ``***``.
"""

from __future__ import annotations

import dataclasses
import socket as _stdsocket
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gevent
from gevent import socket as gsocket

from greenpoint import _http_connect, _socks
from greenpoint._address import HostnameAddress
from greenpoint._checks import FieldError, FieldTypeError, check_timeout, port, seconds
from greenpoint._defaults import DEFAULT_TIMEOUT  # when the proxy endpoint has none
from greenpoint._description import Bracketed
from greenpoint._hostnames import encode_hostname
from greenpoint._negotiation import NegotiationError
from greenpoint._params import Param, choice, host, integer, number, text
from greenpoint._redact import redact_description
from greenpoint._registry import EndpointParser, client_from_string
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.errors import (
    Attempt,
    ConnectError,
    ConnectTimeoutError,
    DescriptionError,
    DNSLookupError,
    ProxyError,
)

__all__ = [
    "CLIENT_PARSERS",
    "HTTPConnectClientEndpoint",
    "SOCKS4aClientEndpoint",
    "SOCKS5ClientEndpoint",
]

RESOLVE_CHOICES = ("proxy", "local")


class _Stalled(Exception):
    """The handshake's own deadline (never the caller's ``gevent.Timeout``)."""


class _Closed(Exception):
    """The proxy closed the connection before its answer was complete."""

    def __init__(self, received: bytes) -> None:
        super().__init__(received)
        self.received = received


def _read_exactly(stream: Any, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.recv(size - len(data))
        if not chunk:
            raise _Closed(bytes(data))
        data += chunk
    return bytes(data)


def _read_http_head(stream: Any) -> bytes:
    """Read the response head and not one byte more (the rest is the tunnel's).

    A gevent socket is peeked at, so the head costs a few reads; any other stream
    (a TLS proxy connection) is read a byte at a time.
    """
    head = bytearray()
    peek = isinstance(stream, gsocket.socket)
    while True:
        chunk = stream.recv(4096, _stdsocket.MSG_PEEK) if peek else stream.recv(1)
        if not chunk:
            raise _Closed(bytes(head))
        end = _http_connect.head_end(bytes(head + chunk))
        take = len(chunk) if end is None else end - len(head)
        head += _read_exactly(stream, take) if peek else chunk[:take]
        if end is not None:
            return bytes(head)


def _label(endpoint: Any) -> str:
    """``host:port`` of a proxy endpoint when it has them, else its description."""
    address = getattr(endpoint, "host", None), getattr(endpoint, "port", None)
    inner = getattr(endpoint, "endpoint", None)  # tls: over something
    if address[0] is None and inner is not None:
        address = getattr(inner, "host", None), getattr(inner, "port", None)
    if address[0] is not None and address[1] is not None:
        return str(HostnameAddress(str(address[0]), int(address[1])))
    return redact_description(str(endpoint))


def _check_seconds(value: Any) -> None:
    seconds("timeout", value, allow_none=False, zero=False)
    if value >= 1e9:  # gevent's timers overflow
        raise FieldError("timeout", f"timeout must be less than 1e9 seconds, not {value!r}")


@dataclasses.dataclass(eq=True)
class _ProxyClientEndpoint(ClientEndpoint):
    """What the three proxy endpoints share: the deadline, the errors, the form."""

    host: str
    port: int
    proxy: Any
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    timeout: float | None = None

    kind: ClassVar[str] = ""  # "SOCKS5": how messages name the proxy's protocol

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise FieldError("host", f"host must be a non-empty str, not {self.host!r}")
        port("port", self.port)
        if not callable(getattr(self.proxy, "open", None)):
            raise FieldTypeError("proxy", f"proxy must be a client endpoint, not {self.proxy!r}")
        if self.timeout is None:
            # Inherit the proxy endpoint's, so that tls: over this one has a deadline.
            self.timeout = getattr(self.proxy, "timeout", None) or DEFAULT_TIMEOUT
        _check_seconds(self.timeout)
        self._check_credentials()

    def _check_credentials(self) -> None:
        if (self.user is None) != (self.password is None):
            raise FieldError("password", "give both user and password, or neither")

    @property
    def target(self) -> HostnameAddress:
        return HostnameAddress(self.host, self.port)

    def open(self, timeout: float | None = None) -> Any:
        """Connect to the proxy, ask it for a tunnel to ``host:port``, return the stream.

        Blocks only the calling greenlet, for at most ``timeout`` seconds (default:
        the endpoint's) for the proxy connect and the handshake together. A
        ``gevent.Timeout`` or ``kill()`` closes the proxy connection and propagates.

        Raises:
            ProxyError: the proxy refused, failed authentication, could not reach the
                target, answered garbage or closed mid-negotiation (``.reply`` is
                its own answer; ``.attempts`` names the proxy step).
            ConnectTimeoutError: the deadline passed (``.attempts`` says where).
            ConnectError: the proxy could not be reached (its own attempts kept).
            DNSLookupError: with ``resolve=local``, the target did not resolve.
        """
        check_timeout(timeout)
        limit = self.timeout if timeout is None else timeout
        if limit is None:  # __post_init__ always sets one; this keeps the types honest
            limit = DEFAULT_TIMEOUT
        started = time.monotonic()
        deadline = started + limit
        target_host = self._target_host(limit)
        stream = self._open_proxy(deadline - time.monotonic())
        try:
            self._negotiate_within(stream, target_host, started, deadline)
        except BaseException:
            stream.close()
            raise
        return stream

    def _target_host(self, limit: float) -> str:
        """The host sent to the proxy: the name, or an address resolved here."""
        return self.host

    def _open_proxy(self, remaining: float) -> Any:
        proxy = _label(self.proxy)
        if remaining <= 0:
            raise ConnectTimeoutError(
                f"timed out before connecting to the {self.kind} proxy {proxy}",
                address=self.target,
            )
        try:
            return self.proxy.open(timeout=remaining)
        except ConnectError as exc:
            error = type(exc)(
                f"cannot reach the {self.kind} proxy {proxy} (for {self.target}): {exc.message}",
                address=self.target,
                attempts=exc.attempts,
                errno=exc.errno,
            )
            for name, value in vars(exc).items():  # e.g. a TLS proxy's .reason
                if name not in vars(error):
                    setattr(error, name, value)
            raise error from exc

    def _negotiate_within(
        self, stream: Any, target_host: str, started: float, deadline: float
    ) -> None:
        proxy = _label(self.proxy)
        step = [f"the {self.kind} handshake"]
        stalled = _Stalled()
        timer = gevent.Timeout(max(0.0, deadline - time.monotonic()), stalled)
        timer.start()
        negotiation_started = time.monotonic()

        def fail(cls: type[ConnectError], message: str, cause: BaseException) -> ConnectError:
            elapsed = time.monotonic() - negotiation_started
            attempt = Attempt(proxy, "proxy", cause, negotiation_started - started, elapsed)
            error = cls(message, address=self.target, attempts=(attempt,))
            vars(error).update(proxy=proxy, reply=getattr(cause, "reply", None))
            return error

        request = f"{self.kind} proxy {proxy}"
        try:
            self._negotiate(stream, target_host, step)
        except _Stalled as exc:
            if exc is not stalled:
                raise
            raise fail(
                ConnectTimeoutError,
                f"timed out: the {request} did not finish {step[0]} for {self.target}",
                exc,
            ) from None
        except NegotiationError as exc:
            verb = "refused" if exc.reply is not None else "failed"
            what = "CONNECT to" if exc.step == "CONNECT" else f"the {exc.step} for"
            raise fail(
                ProxyError, f"{request} {verb} {what} {self.target}: {exc.reason}", exc
            ) from exc
        except _Closed as exc:
            received = len(exc.received)
            raise fail(
                ProxyError,
                f"{request} closed the connection during {step[0]} for {self.target} "
                f"(after {received} byte{'' if received == 1 else 's'} of its answer)",
                exc,
            ) from None
        except OSError as exc:
            raise fail(
                ProxyError,
                f"{request} connection failed during {step[0]} for {self.target}: {exc}",
                exc,
            ) from exc
        finally:
            timer.close()

    def _negotiate(self, stream: Any, target_host: str, step: list[str]) -> None:
        raise NotImplementedError

    def description_values(self) -> Mapping[str, Any]:
        inherited = getattr(self.proxy, "timeout", None) or DEFAULT_TIMEOUT
        timeout = None if self.timeout == inherited else self.timeout
        values = {**super().description_values(), "proxy": Bracketed(str(self.proxy))}
        return {**values, "timeout": timeout}


def _resolve_locally(
    resolver: Callable[..., Any] | None, host: str, port: int, family: int, limit: float
) -> str:
    """``host`` resolved here, for ``resolve=local``; IP literals pass unchanged."""
    from greenpoint.endpoints._tcp_endpoints import literal_family

    if literal_family(host) is not None:
        return host
    lookup = resolver or gevent.get_hub().resolver.getaddrinfo
    target = HostnameAddress(host, port)
    try:
        with gevent.Timeout(limit, False):
            results = lookup(
                encode_hostname(host), port, family=family, type=_stdsocket.SOCK_STREAM
            )
            for found_family, _type, _proto, _name, sockaddr in results:
                if found_family in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
                    return str(sockaddr[0])
            raise DNSLookupError(f"{host} has no address to send to the proxy", address=target)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DNSLookupError):
            raise
        raise DNSLookupError(f"cannot resolve {host} locally: {exc}", address=target) from exc
    raise ConnectTimeoutError(f"timed out resolving {host} locally", address=target)


@dataclasses.dataclass(eq=True)
class SOCKS5ClientEndpoint(_ProxyClientEndpoint):
    """Reach ``host:port`` through the SOCKS5 proxy that ``proxy`` connects to.

    ``user``/``password`` authenticate with RFC 1929 (both or neither). ``resolve``
    is ``"proxy"`` (the default: the name is sent and resolved where the proxy is,
    and no DNS query leaves this host) or ``"local"`` (resolved here; the address is
    sent). ``timeout`` (default: the proxy endpoint's) covers the proxy connect and
    the handshake. ``resolver`` (``getaddrinfo``'s signature) is the testing seam
    for ``resolve="local"``.
    """

    resolve: str = "proxy"
    resolver: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    kind: ClassVar[str] = "SOCKS5"
    prefix: ClassVar[str] = "socks5"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolve not in RESOLVE_CHOICES:
            raise FieldError("resolve", f"resolve must be 'proxy' or 'local', not {self.resolve!r}")
        _socks.connect_request(self.host, self.port)  # a bad name is refused now
        if self.user is not None:
            _socks.auth_request(self.user, self.password or "")

    def _target_host(self, limit: float) -> str:
        if self.resolve == "proxy":
            return self.host
        return _resolve_locally(self.resolver, self.host, self.port, _stdsocket.AF_UNSPEC, limit)

    def _negotiate(self, stream: Any, target_host: str, step: list[str]) -> None:
        with_password = self.user is not None
        step[0] = "the greeting"
        stream.sendall(_socks.greeting(with_password))
        method = _socks.parse_method_choice(
            _read_exactly(stream, _socks.GREETING_REPLY_SIZE), with_password
        )
        if method == _socks.METHOD_USER_PASSWORD:
            step[0] = "authentication"
            stream.sendall(_socks.auth_request(self.user or "", self.password or ""))
            _socks.parse_auth_reply(_read_exactly(stream, 2))
        step[0] = "CONNECT"
        stream.sendall(_socks.connect_request(target_host, self.port))
        head = _read_exactly(stream, _socks.REPLY_HEAD_SIZE)
        rest = _read_exactly(stream, _socks.reply_length(head) - len(head))
        _socks.parse_connect_reply(head + rest)


@dataclasses.dataclass(eq=True)
class SOCKS4aClientEndpoint(_ProxyClientEndpoint):
    """Reach ``host:port`` through the SOCKS4a proxy that ``proxy`` connects to.

    ``user`` is the SOCKS4 user id (there is no password in SOCKS4). ``resolve``
    ``"proxy"`` (default) sends the name (SOCKS4a); ``"local"`` resolves it here to
    an IPv4 address (plain SOCKS4). SOCKS4 cannot reach IPv6 addresses.
    """

    resolve: str = "proxy"
    resolver: Callable[..., Any] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    kind: ClassVar[str] = "SOCKS4a"
    prefix: ClassVar[str] = "socks4a"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolve not in RESOLVE_CHOICES:
            raise FieldError("resolve", f"resolve must be 'proxy' or 'local', not {self.resolve!r}")
        _socks.socks4_connect_request(self.host, self.port, self.user or "")

    def _check_credentials(self) -> None:
        if self.password is not None:
            raise FieldError("password", "SOCKS4 has no password; give only user= (the user id)")

    def _target_host(self, limit: float) -> str:
        if self.resolve == "proxy":
            return self.host
        return _resolve_locally(self.resolver, self.host, self.port, _stdsocket.AF_INET, limit)

    def _negotiate(self, stream: Any, target_host: str, step: list[str]) -> None:
        step[0] = "CONNECT"
        stream.sendall(_socks.socks4_connect_request(target_host, self.port, self.user or ""))
        _socks.parse_socks4_reply(_read_exactly(stream, _socks.SOCKS4_REPLY_SIZE))


@dataclasses.dataclass(eq=True)
class HTTPConnectClientEndpoint(_ProxyClientEndpoint):
    """Reach ``host:port`` through an HTTP proxy's ``CONNECT`` (RFC 9110 §9.3.6).

    ``user``/``password`` are sent as Basic proxy authentication. The proxy always
    resolves the name. Any 2xx answer opens the tunnel; anything else is a
    :class:`~greenpoint.errors.ProxyError` quoting the status line.
    """

    kind: ClassVar[str] = "HTTP"
    prefix: ClassVar[str] = "httpconnect"

    def __post_init__(self) -> None:
        super().__post_init__()
        _http_connect.connect_request(self.host, self.port, self.user, self.password)

    def _negotiate(self, stream: Any, target_host: str, step: list[str]) -> None:
        step[0] = "CONNECT"
        stream.sendall(
            _http_connect.connect_request(target_host, self.port, self.user, self.password)
        )
        _http_connect.parse_response(_read_http_head(stream))


# -- descriptions ----------------------------------------------------------------


def _proxy_endpoint(prefix: str, description: str) -> Any:
    try:
        return client_from_string(description)
    except DescriptionError as exc:
        shown = redact_description(description)
        raise DescriptionError(
            f"{prefix}: bad proxy=[{shown}]: {redact_description(str(exc))}",
            prefix=prefix,
            parameter="proxy",
        ) from None


def _builder(prefix: str, cls: type[_ProxyClientEndpoint]) -> Callable[..., Any]:
    def build(proxy: str, **values: Any) -> Any:
        # A value the endpoint refuses raises FieldError: the parser names its key.
        return cls(proxy=_proxy_endpoint(prefix, proxy), **values)

    return build


def _params(*, password: bool, resolve: bool) -> tuple[Param, ...]:
    params = [
        Param("host", host, positional=True, help="the target, as the proxy should reach it"),
        Param("port", integer(1, 65535), positional=True, help="the target's port"),
        Param("proxy", text, help="client description of the proxy, e.g. [tcp:127.0.0.1:1080]"),
        Param("user", text, None, help="user name" if password else "SOCKS4 user id"),
    ]
    if password:
        params.append(Param("password", text, None, help="shown as ***", secret=True))
    if resolve:
        params.append(
            Param(
                "resolve",
                choice(*RESOLVE_CHOICES),
                "proxy",
                help="where the target name is resolved: proxy or local",
            )
        )
    params.append(
        Param(
            "timeout",
            number,
            None,
            help="seconds for proxy connect and handshake (else the proxy= endpoint's)",
            shown_default=f"{DEFAULT_TIMEOUT:g}",
        )
    )
    return tuple(params)


CLIENT_PARSERS = {
    "socks5": EndpointParser(
        "socks5",
        _params(password=True, resolve=True),
        _builder("socks5", SOCKS5ClientEndpoint),
        "a tunnel to HOST:PORT through a SOCKS5 proxy (RFC 1928; user/password RFC 1929)",
    ),
    "socks4a": EndpointParser(
        "socks4a",
        _params(password=False, resolve=True),
        _builder("socks4a", SOCKS4aClientEndpoint),
        "a tunnel to HOST:PORT through a SOCKS4a proxy (IPv4 and names only)",
    ),
    "httpconnect": EndpointParser(
        "httpconnect",
        _params(password=True, resolve=False),
        _builder("httpconnect", HTTPConnectClientEndpoint),
        "a tunnel to HOST:PORT through an HTTP proxy's CONNECT (Basic auth)",
    ),
}
