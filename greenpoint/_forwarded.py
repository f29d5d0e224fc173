"""``X-Forwarded-For`` / ``X-Forwarded-Proto`` from trusted proxies only; pure.

A reverse proxy in front of the server says who the client was and whether it
used TLS in these headers; anyone else can send them too, so they count only on
connections from the proxies listed in ``--forwarded-allow-ips`` (gunicorn's
name and default, ``127.0.0.1,::1``; ``*`` trusts every peer). A peer with no IP
address (a UNIX socket client) is trusted, as gunicorn does: whoever may open the
socket file is local and chosen by its permissions.

The client is the right-most ``X-Forwarded-For`` entry that is not itself a
trusted proxy: each proxy appends the address it received the request from, so
entries left of the first untrusted one may be forged by the client.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from greenpoint._hostnames import split_ip_literal

__all__ = [
    "DEFAULT_FORWARDED_ALLOW_IPS",
    "ForwardedAllowList",
    "allow_list_from_environment",
    "apply_forwarded_headers",
    "forwarded_client",
    "parse_forwarded_allow_ips",
]

# gunicorn's default; the FORWARDED_ALLOW_IPS environment variable overrides it there
# and in the greenpoint command line.
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ForwardedAllowList:
    """The peers whose forwarding headers are believed."""

    networks: tuple[_Network, ...] = ()
    everyone: bool = False

    def trusts(self, host: str | None) -> bool:
        """Whether a peer at ``host`` may set the client address and scheme.

        ``None`` (a peer with no IP address: a UNIX socket client) is trusted.
        """
        if host is None or self.everyone:
            return True
        address = _ip(host)
        return address is not None and any(address in network for network in self.networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    literal = split_ip_literal(text.strip())
    if literal is None:
        return None
    address = literal.ip_address()
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def parse_forwarded_allow_ips(spec: str | Iterable[str] | None) -> ForwardedAllowList:
    """Parse ``"10.0.0.1,192.168.0.0/16,::1"`` or ``"*"`` (or a list of those items).

    ``None`` or an empty string trusts no one.

    Raises:
        ValueError: an item is neither an IP address, a network, nor ``*``.
    """
    if spec is None:
        return ForwardedAllowList()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks: list[_Network] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            return ForwardedAllowList(everyone=True)
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"forwarded-allow-ips: {item!r} is not an IP address, a network (10.0.0.0/8) or *"
            ) from None
    return ForwardedAllowList(tuple(networks))


def allow_list_from_environment() -> str:
    """The command line's default: ``$FORWARDED_ALLOW_IPS`` or gunicorn's default."""
    return os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)


def forwarded_client(header: str, allow: ForwardedAllowList) -> str | None:
    """The client address an ``X-Forwarded-For`` value names, or ``None`` if unusable.

    Right to left, the first entry that is not a trusted proxy; the left-most if
    every entry is trusted. An entry that is not an IP address makes the header
    unusable (it says nothing we can log or match on).
    """
    entries = [entry.strip() for entry in header.split(",") if entry.strip()]
    for position in range(len(entries) - 1, -1, -1):
        address = _ip(entries[position])
        if address is None:
            return None
        if position == 0 or not allow.trusts(str(address)):
            return str(address)
    return None


def apply_forwarded_headers(
    environ: MutableMapping[str, Any], peer_host: str | None, allow: ForwardedAllowList
) -> None:
    """Set ``REMOTE_ADDR`` and ``wsgi.url_scheme`` from the headers if ``peer_host`` is trusted.

    With a client from ``X-Forwarded-For``, ``REMOTE_PORT`` is removed: the
    client's port is not known. ``X-Forwarded-Proto`` counts when it is ``http``
    or ``https`` (its first entry, the scheme the client used with the first proxy).
    """
    if not allow.trusts(peer_host):
        return
    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded_for:
        client = forwarded_client(forwarded_for, allow)
        if client is not None:
            environ["REMOTE_ADDR"] = client
            environ.pop("REMOTE_PORT", None)
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    if proto:
        scheme = proto.split(",", 1)[0].strip().lower()
        if scheme in ("http", "https"):
            environ["wsgi.url_scheme"] = scheme
