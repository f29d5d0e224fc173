"""Which proxy curl would use for a host, from ``*_PROXY`` variables. Pure, no I/O.

Only consulted when asked (``client_from_proxy_environment``, ``envproxy:``): a
program that did not ask never has its connections sent to a proxy because of its
environment. The rules are curl's (``curl(1)``, ENVIRONMENT):

* ``https``: ``https_proxy`` then ``HTTPS_PROXY``; ``http``: ``http_proxy`` only
  (the upper-case ``HTTP_PROXY`` is ignored, as by curl, because CGI servers set it
  from a request header: httpoxy); any other scheme ``<scheme>_proxy``; then
  ``all_proxy``/``ALL_PROXY``.
* ``no_proxy``/``NO_PROXY``: names separated by commas; ``*`` matches every host; a
  name matches itself and its subdomains (a leading dot is optional); an IP address
  matches itself, and an address with ``/bits`` matches its network.
* The proxy URL's scheme picks the protocol: ``http://`` (also when there is none),
  ``https://`` (TLS to the proxy), ``socks5h://`` and ``socks4a://`` (the proxy
  resolves the name), ``socks5://`` and ``socks4://`` (resolved here). The port
  defaults to 1080, or 443 for ``https://``, as in curl; ``user:password@`` is
  percent-decoded.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse
from collections.abc import Mapping

__all__ = ["ProxyURL", "no_proxy_matches", "parse_proxy_url", "proxy_for", "proxy_url"]

KINDS = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
DEFAULT_PORT = 1080  # curl's default for a proxy URL without a port
DEFAULT_HTTPS_PORT = 443


@dataclasses.dataclass(frozen=True)
class ProxyURL:
    """A proxy named by a URL: its protocol, address and credentials."""

    kind: str
    host: str
    port: int
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


def proxy_url(environ: Mapping[str, str], scheme: str) -> str | None:
    """The proxy URL the environment names for ``scheme``, or ``None``."""
    scheme = scheme.lower()
    names = [f"{scheme}_proxy"]
    if scheme != "http":
        names.append(f"{scheme.upper()}_PROXY")
    names += ["all_proxy", "ALL_PROXY"]
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def no_proxy_matches(host: str, no_proxy: str) -> bool:
    """Whether ``host`` is exempt from the proxy by a ``NO_PROXY`` value."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".").rstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def parse_proxy_url(url: str) -> ProxyURL:
    """A ``*_PROXY`` value as a :class:`ProxyURL`.

    Raises:
        ValueError: an unknown scheme, no host, or a bad port (the URL's password
            is never part of the message).
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    kind = parts.scheme.lower()
    shown = _without_password(parts)
    if kind not in KINDS:
        raise ValueError(f"proxy {shown}: unknown scheme {kind!r} (expected {', '.join(KINDS)})")
    if not parts.hostname:
        raise ValueError(f"proxy {shown}: no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"proxy {shown}: bad port") from None
    if port is None:
        port = DEFAULT_HTTPS_PORT if kind == "https" else DEFAULT_PORT
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if user is not None and password is None and kind != "socks4" and kind != "socks4a":
        password = ""
    return ProxyURL(kind, parts.hostname, port, user, password)


def _without_password(parts: urllib.parse.SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    user = f"{parts.username}:***@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}"


def proxy_for(host: str, scheme: str, environ: Mapping[str, str]) -> ProxyURL | None:
    """The proxy to reach ``host`` by, per the environment; ``None``: connect directly."""
    url = proxy_url(environ, scheme)
    if url is None:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if no_proxy_matches(host, no_proxy):
        return None
    return parse_proxy_url(url)
