"""Proxies from the environment, opt-in: ``client_from_proxy_environment`` and ``envproxy:``.

Nothing in greenpoint reads ``*_PROXY`` unless asked through one of these two. The
lookup rules are curl's (see :mod:`greenpoint._proxy_env`).

    envproxy:HOST:PORT[:scheme=https][:timeout=30]

reads the environment each time it opens (not when it is parsed), so
``str(endpoint)`` stays ``envproxy:HOST:PORT`` whatever the variables say.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from greenpoint._checks import check_timeout
from greenpoint._defaults import DEFAULT_TIMEOUT
from greenpoint._params import Param, host, integer, number
from greenpoint._proxy_env import ProxyURL, proxy_for
from greenpoint._registry import EndpointParser
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.endpoints.proxy import (
    HTTPConnectClientEndpoint,
    SOCKS4aClientEndpoint,
    SOCKS5ClientEndpoint,
)

__all__ = ["CLIENT_PARSERS", "EnvironmentProxyEndpoint", "client_from_proxy_environment"]


def _proxy_endpoint(proxy: ProxyURL, timeout: float) -> Any:
    from greenpoint.endpoints.hostname import HostnameEndpoint

    tcp = HostnameEndpoint(proxy.host, proxy.port, timeout=timeout)
    if proxy.kind != "https":
        return tcp
    from greenpoint.endpoints._tls_endpoints import wrap_client_tls
    from greenpoint.tls import options_for_client_tls

    return wrap_client_tls(options_for_client_tls(proxy.host), tcp)


def client_from_proxy_environment(
    host: str,
    port: int,
    *,
    scheme: str = "https",
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ClientEndpoint:
    """A client endpoint to ``host:port`` through the proxy the environment names.

    ``scheme`` is the protocol the connection will carry, for picking the variable
    (``https``: ``HTTPS_PROXY``; ``http``: ``http_proxy``; any: ``ALL_PROXY``).
    Without a proxy for ``host`` (none set, or ``NO_PROXY`` matches) the endpoint
    connects directly (``tcp:HOST:PORT``). Reads ``environ`` (default
    ``os.environ``) now; does no I/O.

    Raises:
        ValueError: a proxy variable that is not a proxy URL (no password shown).
    """
    proxy = proxy_for(host, scheme, os.environ if environ is None else environ)
    if proxy is None:
        from greenpoint.endpoints.hostname import HostnameEndpoint

        return HostnameEndpoint(host, port, timeout=timeout)
    inner = _proxy_endpoint(proxy, timeout)
    if proxy.kind in ("http", "https"):
        return HTTPConnectClientEndpoint(
            host, port, inner, proxy.user, proxy.password, timeout=timeout
        )
    resolve = "proxy" if proxy.kind in ("socks5h", "socks4a") else "local"
    if proxy.kind.startswith("socks4"):
        return SOCKS4aClientEndpoint(
            host, port, inner, proxy.user, resolve=resolve, timeout=timeout
        )
    return SOCKS5ClientEndpoint(
        host, port, inner, proxy.user, proxy.password, resolve=resolve, timeout=timeout
    )


@dataclasses.dataclass(eq=True)
class EnvironmentProxyEndpoint(ClientEndpoint):
    """``host:port`` through the environment's proxy, looked up at each ``open()``."""

    host: str
    port: int
    scheme: str = "https"
    timeout: float = DEFAULT_TIMEOUT
    environ: Mapping[str, str] | None = dataclasses.field(
        default=None, compare=False, repr=False, kw_only=True
    )

    prefix: ClassVar[str] = "envproxy"

    def resolved(self) -> ClientEndpoint:
        """The endpoint the environment says to use right now."""
        return client_from_proxy_environment(
            self.host, self.port, scheme=self.scheme, environ=self.environ, timeout=self.timeout
        )

    def open(self, timeout: float | None = None) -> Any:
        """Open :meth:`resolved`; see the proxy endpoints for the errors."""
        check_timeout(timeout)
        return self.resolved().open(timeout=self.timeout if timeout is None else timeout)


def _scheme(value: str) -> str:
    value = value.strip().lower()
    if not value.isidentifier():
        raise ValueError("expected a URL scheme such as https, http or ssh")
    return value


CLIENT_PARSERS = {
    "envproxy": EndpointParser(
        "envproxy",
        (
            Param("host", host, positional=True, help="the target host"),
            Param("port", integer(1, 65535), positional=True, help="the target port"),
            Param("scheme", _scheme, "https", help="which *_PROXY variable applies (curl's rules)"),
            Param("timeout", number, DEFAULT_TIMEOUT, help="seconds for connect and handshake"),
        ),
        EnvironmentProxyEndpoint,
        "HOST:PORT through the proxy ALL_PROXY/HTTPS_PROXY name (NO_PROXY honoured), as curl",
    ),
}
