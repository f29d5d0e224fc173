"""Host names, IP literals and bind addresses: checked and normalised. Pure.

Three questions every TCP client asks before any I/O:

* is the host an IP literal (``192.0.2.1``, ``::1``, ``[::1]``, ``fe80::1%eth0``)? Then
  it is connected to directly and the resolver is never called (element-hq/synapse#9865:
  literals queued behind name lookups turned into 60 s "DNS failures");
* otherwise, what ASCII name goes to the resolver? Internationalised names are
  NFC-normalised and encoded with the ``idna`` package (IDNA 2008 with the UTS #46
  mapping, non-transitional, as browsers do: ``faß.de`` is ``xn--fa-hia.de``, not
  ``fass.de`` as Python's IDNA 2003 codec says), and a name that cannot be a DNS name
  is refused with a sentence saying why. The same A-label is sent as SNI and checked
  against the certificate;
* which local address does each family bind to? One address binds only its own family
  (Twisted binds one address to every attempt, which fails for the other family).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import unicodedata
from collections.abc import Mapping
from typing import Any

import idna

__all__ = [
    "ANY_ADDRESS",
    "IPLiteral",
    "encode_hostname",
    "encode_idna",
    "family_name",
    "is_ip_literal",
    "literal_family",
    "normalize_bind_address",
    "parse_ip_literal",
    "split_ip_literal",
]

_MAX_NAME_LENGTH = 253  # RFC 1035 §2.3.4 (255 octets on the wire, less the framing)
_MAX_LABEL_LENGTH = 63  # RFC 1035 §2.3.4
# Letters, digits and hyphens (RFC 952/1123); underscores too, since real zones use
# them (SRV-style and some internal names) and getaddrinfo accepts them.
_LABEL_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def family_name(family: int, *, constant: bool = False) -> str:
    """``"IPv4"``, ``"IPv6"`` or ``"UNIX"`` for an address family, for messages.

    ``constant=True`` adds the socket module's name, ``"IPv6 (AF_INET6)"``, where the
    reader deals in socket constants (adopting a descriptor).
    """
    name = _FAMILY_NAMES.get(family)
    try:
        symbol = socket.AddressFamily(family).name
    except ValueError:
        symbol = ""
    if name is None:
        name = symbol.removeprefix("AF_") if symbol else f"address family {family}"
    return f"{name} ({symbol})" if constant and symbol else name


_FAMILY_NAMES: dict[int, str] = {
    socket.AF_INET: "IPv4",
    socket.AF_INET6: "IPv6",
    socket.AF_UNIX: "UNIX",
}

# The unspecified ("any") address of each family, as bind() spells it.
ANY_ADDRESS: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


@dataclasses.dataclass(frozen=True)
class IPLiteral:
    """An IP literal taken apart: ``family``, the bare ``address``, the IPv6 ``zone``.

    ``fe80::1%eth0`` is ``IPLiteral(AF_INET6, "fe80::1", "eth0")``; the zone is ``""``
    when there is none (always, for IPv4).
    """

    family: int
    address: str
    zone: str = ""

    @property
    def text(self) -> str:
        """The literal without brackets, zone kept: what ``bind()`` and messages show."""
        return f"{self.address}%{self.zone}" if self.zone else self.address

    def sockaddr(self, port: int) -> tuple[Any, ...]:
        """The ``sockaddr`` for ``port``; an IPv6 zone becomes the scope id.

        Raises:
            ValueError: the zone names no network interface of this machine.
        """
        if self.family == socket.AF_INET:
            return (self.address, port)
        return (self.address, port, 0, _scope_id(self.zone, self.text))

    def ip_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The :mod:`ipaddress` object (zone left out), for network membership tests."""
        return ipaddress.ip_address(self.address)


def split_ip_literal(host: str) -> IPLiteral | None:
    """The one "is this an IP literal?" test: an :class:`IPLiteral`, or ``None`` for a name.

    Accepts dotted-quad IPv4 (``inet_pton``'s strict form: ``127.1`` and ``010.0.0.1``
    are names, as they would be to a resolver), IPv6 optionally in brackets, and an
    IPv6 zone (``%eth0`` or ``%2``). Does no I/O: a zone is only looked up by
    :meth:`IPLiteral.sockaddr`. Brackets around anything else (``[nope]``) are not a
    literal; :func:`parse_ip_literal` says why.
    """
    text = host
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
    if not bracketed:
        try:
            socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            pass
        else:
            return IPLiteral(socket.AF_INET, text)
        if ":" not in text:
            return None
    address, _, zone = text.partition("%")
    try:
        socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError):
        return None
    return IPLiteral(socket.AF_INET6, address, zone)


def literal_family(host: str) -> int | None:
    """``AF_INET`` or ``AF_INET6`` for an IP literal, ``None`` for anything else."""
    literal = split_ip_literal(host)
    return None if literal is None else literal.family


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IP literal (see :func:`split_ip_literal`)."""
    return literal_family(host) is not None


def parse_ip_literal(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """``(family, sockaddr)`` when ``host`` is an IP literal, ``None`` for a name.

    As :func:`split_ip_literal`, with the zone turned into the sockaddr's scope id.

    Raises:
        ValueError: for brackets around something that is not an IPv6 literal, or an
            unknown zone.
    """
    literal = split_ip_literal(host)
    if literal is None:
        if host.startswith("[") and host.endswith("]"):
            raise ValueError(f"{host!r}: brackets hold an IPv6 address, not {host[1:-1]!r}")
        return None
    return literal.family, literal.sockaddr(port)


def _scope_id(zone: str, host: str) -> int:
    if not zone:
        return 0
    if zone.isdigit():
        return int(zone)
    try:
        return socket.if_nametoindex(zone)
    except OSError:
        raise ValueError(f"{host!r}: no network interface named {zone!r}") from None


def encode_hostname(host: str | bytes) -> str:
    """The ASCII form of a host name, as the resolver should see it.

    Raises:
        ValueError: naming the host and why it cannot be a DNS name.
    """
    if isinstance(host, bytes | bytearray):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"invalid host name {host!r}: bytes must be ASCII") from None
    if not isinstance(host, str):
        raise ValueError(f"a host name must be str or bytes, not {type(host).__name__}")
    ascii_name = host if host.isascii() else _idna_encode(host)
    _check_ascii_name(ascii_name, shown=host)
    return ascii_name


def _idna_encode(host: str) -> str:
    return encode_idna(host).decode("ascii")


def encode_idna(host: str) -> bytes:
    """The A-label form (``xn--...``) of a non-ASCII host name: UTS #46, then IDNA 2008.

    Non-transitional (UTS #46 §4, as browsers and ``idna``'s default do): ``ß`` and
    the joiners are kept as themselves, not mapped to ``ss`` and dropped.

    Raises:
        ValueError: naming the host and the rule it breaks.
    """
    normalised = unicodedata.normalize("NFC", host)
    try:
        return idna.encode(normalised, uts46=True, transitional=False)
    except (UnicodeError, ValueError) as exc:
        # idna.IDNAError is a UnicodeError.
        raise ValueError(f"invalid host name {host!r}: {exc}") from None


def _check_ascii_name(name: str, shown: str) -> None:
    def refuse(reason: str) -> ValueError:
        return ValueError(f"invalid host name {shown!r}: {reason}")

    if not name:
        raise refuse("it is empty")
    bare = name[:-1] if name.endswith(".") else name  # one trailing dot: fully qualified
    if len(bare) > _MAX_NAME_LENGTH:
        raise refuse(f"longer than {_MAX_NAME_LENGTH} characters")
    for label in bare.split("."):
        if not label:
            raise refuse("it has an empty label (two dots in a row, or a leading dot)")
        if len(label) > _MAX_LABEL_LENGTH:
            raise refuse(f"the label {label[:20]!r}... is longer than {_MAX_LABEL_LENGTH}")
        bad = sorted(set(label) - _LABEL_CHARACTERS)
        if bad:
            raise refuse(f"{bad[0]!r} cannot appear in a host name")


def _one_bind_address(value: Any) -> tuple[int, tuple[str, int]]:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii")
    if isinstance(value, str):
        host, port = value.strip(), 0
    elif isinstance(value, tuple | list) and len(value) >= 2:
        host, port = value[0], value[1]
        if isinstance(host, bytes | bytearray):
            host = bytes(host).decode("ascii")
    else:
        raise ValueError(f"a bind address is a host or (host, port), not {value!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"bind port must be a number from 0 to 65535, not {port!r}")
    parsed = parse_ip_literal(host, port) if isinstance(host, str) else None
    if parsed is None:
        raise ValueError(f"a bind address must be an IP address, not {host!r}")
    family, sockaddr = parsed
    return family, (sockaddr[0] if family == socket.AF_INET else _v6_text(host), port)


def _v6_text(host: str) -> str:
    # Keep the zone (bind() understands "fe80::1%eth0"), drop the brackets.
    return host[1:-1] if host.startswith("[") else host


def normalize_bind_address(
    value: Any,
) -> tuple[str, int] | dict[int, tuple[str, int]] | None:
    """The canonical form of a ``bind_address``: ``None``, ``(host, port)`` or a dict.

    Accepts ``None``; an IP literal (``"192.0.2.1"``, ``"[::1]"``); several, comma
    separated, at most one per family (``"192.0.2.1,2001:db8::1"``, the form a
    description carries); ``(host, port)``; or ``{AF_INET: ..., AF_INET6: ...}``.
    A single address comes back as ``(host, port)``, and it is used only for its own
    family; addresses for both families come back as a dict keyed by family.

    Raises:
        ValueError: for a name, a bad port, two addresses of one family, or a dict key
            that does not match its address.
    """
    if value is None:
        return None
    by_family: dict[int, tuple[str, int]] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            family, address = _one_bind_address(item)
            if key != family:
                raise ValueError(
                    f"bind address {item!r} is {family_name(family)}, but is listed under "
                    f"{family_name(key)}"
                )
            by_family[family] = address
    else:
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("ascii")
        items = [part for part in value.split(",")] if isinstance(value, str) else [value]
        for item in items:
            family, address = _one_bind_address(item)
            if family in by_family:
                raise ValueError(
                    f"two {family_name(family)} bind addresses in {value!r}: give at most one "
                    "per family"
                )
            by_family[family] = address
    if not by_family:
        return None
    if len(by_family) == 1:
        return next(iter(by_family.values()))
    return dict(sorted(by_family.items()))


def bind_address_for(
    bind_address: tuple[str, int] | dict[int, tuple[str, int]] | None, family: int
) -> tuple[str, int] | None:
    """The local address an attempt of ``family`` binds to, or ``None`` (any)."""
    if bind_address is None:
        return None
    if isinstance(bind_address, dict):
        return bind_address.get(family)
    bind_family, _ = _one_bind_address(bind_address)
    return bind_address if bind_family == family else None
