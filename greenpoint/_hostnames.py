"""Host names, IP literals and bind addresses: checked and normalized. Pure.

Three questions every TCP client asks before any I/O:

* is the host an IP literal (``192.0.2.1``, ``::1``, ``[::1]``, ``fe80::1%eth0``)? Then
  it is connected to directly and the resolver is never called (element-hq/synapse#9865:
  literals queued behind name lookups turned into 60 s "DNS failures");
* otherwise, what ASCII name goes to the resolver? Internationalised names are
  NFC-normalized and encoded with the ``idna`` package (IDNA 2008 with the UTS #46
  mapping, non-transitional, as browsers do: ``faß.de`` is ``xn--fa-hia.de``, not
  ``fass.de`` as Python's IDNA 2003 codec says), and a name that cannot be a DNS name
  is refused with a sentence saying why. The same A-label is sent as SNI and checked
  against the certificate;
* which local address does each family bind to? One address binds only its own family
  (Twisted binds one address to every attempt, which fails for the other family).

Each answer has one home here, used by every endpoint: :func:`split_ip_literal` (and
``literal_family``/``is_ip_literal``/``parse_ip_literal`` derived from it), the
hostname encoders, :class:`BindAddress` with its one parser, and :func:`family_name`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import unicodedata
from collections.abc import Mapping
from typing import Any

import idna

from greenpoint._checks import FieldError, FieldTypeError, whole_number

__all__ = [
    "ANY_ADDRESS",
    "BindAddress",
    "IPLiteral",
    "checked_host",
    "encode_hostname",
    "encode_idna",
    "family_name",
    "is_ip_literal",
    "literal_family",
    "parse_ip_literal",
    "split_ip_literal",
    "wrong_family",
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


def checked_host(host: Any, field: str = "host") -> str:
    """``host`` (ASCII bytes decoded) if it is an IP literal or a valid host name.

    What a client endpoint's constructor checks, so that a bad name is refused when
    the endpoint is made rather than at ``open()``.

    Raises:
        FieldTypeError: not a str or bytes. FieldError: naming what is wrong with it.
    """
    if isinstance(host, bytes | bytearray):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise FieldError(
                field, f"a host name given as bytes must be ASCII (IDNA-encoded), not {host!r}"
            ) from None
    if not isinstance(host, str):
        raise FieldTypeError(field, f"{field} must be a str, not {type(host).__name__} {host!r}")
    try:
        if parse_ip_literal(host, 0) is None:
            encode_hostname(host)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None
    return host


def _idna_encode(host: str) -> str:
    return encode_idna(host).decode("ascii")


def encode_idna(host: str) -> bytes:
    """The A-label form (``xn--...``) of a non-ASCII host name: UTS #46, then IDNA 2008.

    Non-transitional (UTS #46 §4, as browsers and ``idna``'s default do): ``ß`` and
    the joiners are kept as themselves, not mapped to ``ss`` and dropped.

    Raises:
        ValueError: naming the host and the rule it breaks.
    """
    normalized = unicodedata.normalize("NFC", host)
    try:
        return idna.encode(normalized, uts46=True, transitional=False)
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


# -- bind addresses ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BindAddress:
    """The local address a client's sockets bind to before connecting, per family.

    ``ipv4``/``ipv6`` is the IP literal (no brackets; an IPv6 zone kept) that
    attempts of that family bind to; ``None`` leaves that family unbound (the
    system picks), so one address binds only its own family. ``port`` (0: any) is
    shared. With neither host set, ``port`` alone is bound, on the any-address of
    every family (``tcp:host:80:bindPort=4000``).

    Made by :meth:`parse` from whatever an endpoint was given; every client endpoint
    holds one (or ``None``) in its ``bind_address``, and :meth:`description_keys`
    writes it back as ``bindAddress``/``bindPort``.
    """

    ipv4: str | None = None
    ipv6: str | None = None
    port: int = 0

    @classmethod
    def parse(
        cls, value: Any, *, port: int | None = None, field: str = "bind_address"
    ) -> BindAddress | None:
        """The one bind-address parser: ``None`` (bind nothing) or a :class:`BindAddress`.

        ``value`` is ``None``; an IP literal (``"192.0.2.1"``, ``"[::1]"``); one per
        family separated by a comma (``"192.0.2.1,2001:db8::1"``, a description's
        form); ``(host, port)``, where host ``""`` is any address; a mapping
        ``{AF_INET: host or (host, port), AF_INET6: ...}``; an IPv6 sockaddr
        ``(host, port, flowinfo, scope_id)``; or a ``BindAddress``.
        ``port`` is a description's ``bindPort``, for a text or ``None`` value. The
        any-address of both families (``"0.0.0.0,::"``) is the same as a port alone.

        Raises:
            FieldError: naming ``field``: a host name (binding to one would block in
                the C resolver), two addresses of one family, a bad port, a mapping
                key that does not match its address, or different ports per family.
        """
        if isinstance(value, BindAddress):
            return value
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("ascii", "backslashreplace")
        hosts: dict[int, str] = {}
        ports: set[int] = set()
        if value is None or isinstance(value, str):
            items = [] if value is None or not value.strip() else value.split(",")
            ports.add(_bind_port(0 if port is None else port, field))
            if len(items) > 1 and not all(item.strip() for item in items):
                raise FieldError(
                    field, f"{field}: expected IP addresses separated by a comma, not {value!r}"
                )
            for item in items:
                _add_bind_host(hosts, item.strip(), value, field)
        elif isinstance(value, tuple | list):
            host, bind_port = _host_and_port(value, field)
            ports.add(bind_port)
            if host:
                _add_bind_host(hosts, host, value, field)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                host, bind_port = _host_and_port(item, field)
                ports.add(bind_port)
                if _add_bind_host(hosts, host, value, field) != key:
                    raise FieldError(
                        field,
                        f"{field} {item!r} is {family_name(_literal_of(host, field).family)}, "
                        f"but is listed under {family_name(key)}",
                    )
        else:
            raise FieldError(field, f"{field} must be a host or (host, port), not {value!r}")
        if len(ports) > 1:
            raise FieldError(
                field, f"{field} {value!r} gives ports {sorted(ports)}: give one for every family"
            )
        return cls._made(hosts, ports.pop())

    @classmethod
    def _made(cls, hosts: dict[int, str], port: int) -> BindAddress | None:
        if len(hosts) == 2 and all(_unspecified(host) for host in hosts.values()):
            hosts = {}  # "0.0.0.0,::": every family's any-address is a port alone
        if not hosts and not port:
            return None  # nothing to bind: the system picks, as without one
        return cls(hosts.get(socket.AF_INET), hosts.get(socket.AF_INET6), port)

    def for_family(self, family: int) -> tuple[Any, ...] | None:
        """The ``sockaddr`` an attempt of ``family`` binds to, or ``None`` (do not bind).

        An IPv6 zone becomes the scope id (``bind()`` would drop it from text).

        Raises:
            ValueError: the zone names no network interface of this machine.
        """
        if self.ipv4 is None and self.ipv6 is None:
            return (ANY_ADDRESS[family], self.port)
        host = self.ipv4 if family == socket.AF_INET else self.ipv6
        if host is None:
            return None
        literal = split_ip_literal(host)
        assert literal is not None  # parse() let in literals only
        return literal.sockaddr(self.port) if literal.zone else (literal.address, self.port)

    def only(self, family: int, owner: str, field: str = "bind_address") -> BindAddress:
        """This address for an endpoint of one ``family`` (named ``owner``).

        Raises:
            FieldError: no address of ``family`` was given.
        """
        if self.ipv4 is None and self.ipv6 is None:
            return self
        if family == socket.AF_INET and self.ipv4 is not None:
            return BindAddress(ipv4=self.ipv4, port=self.port)
        if family == socket.AF_INET6 and self.ipv6 is not None:
            return BindAddress(ipv6=self.ipv6, port=self.port)
        given = self.ipv6 if self.ipv6 is not None else self.ipv4
        raise wrong_family(field, str(given), family, owner)

    @property
    def hosts_text(self) -> str | None:
        """The ``bindAddress`` text: ``"192.0.2.1,::1"``, or ``None`` for a port alone."""
        hosts = [host for host in (self.ipv4, self.ipv6) if host is not None]
        return ",".join(hosts) if hosts else None

    def description_keys(self) -> dict[str, Any]:
        """``bindAddress`` and ``bindPort`` for a description, only those that are set."""
        keys: dict[str, Any] = {}
        if self.hosts_text is not None:
            keys["bindAddress"] = self.hosts_text
        if self.port:
            keys["bindPort"] = self.port
        return keys


def wrong_family(field: str, value: str, family: int, owner: str) -> FieldError:
    """The error for an address ``value`` of the other family than ``owner``'s."""
    hint = "TCP6" if family == socket.AF_INET else "TCP4"
    other = socket.AF_INET6 if family == socket.AF_INET else socket.AF_INET
    return FieldError(
        field,
        f"{owner} is {family_name(family)}, but {field} {value!r} is an "
        f"{family_name(other)} address (use the {hint} endpoint)",
    )


def _unspecified(host: str) -> bool:
    literal = split_ip_literal(host)
    return literal is not None and literal.ip_address().is_unspecified


def _bind_port(value: Any, field: str) -> int:
    return whole_number(f"{field} port", value, 0, 65535, field=field)


def _host_and_port(value: Any, field: str) -> tuple[str, int]:
    """``host``, ``(host, port)`` or an IPv6 sockaddr (bytes decoded) as ``(host, port)``."""
    if isinstance(value, tuple | list) and len(value) == 4:  # (host, port, flow, scope id)
        host, bind_port, _flowinfo, scope_id = value
        if scope_id and isinstance(host, str) and "%" not in host:
            host = f"{host}%{scope_id}"
    elif isinstance(value, tuple | list):
        if len(value) != 2:
            raise FieldError(field, f"{field} must be a host or (host, port), not {value!r}")
        host, bind_port = value
    else:
        host, bind_port = value, 0
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "backslashreplace")
    if not isinstance(host, str):
        raise FieldTypeError(field, f"{field} host must be a str, not {type(host).__name__}")
    return host.strip(), _bind_port(bind_port, field)


def _literal_of(host: str, field: str) -> IPLiteral:
    literal = split_ip_literal(host)
    if literal is None:
        raise FieldError(field, f"{field} must be an IP address, not {host!r}")
    return literal


def _add_bind_host(hosts: dict[int, str], host: str, given: Any, field: str) -> int:
    """Add ``host`` (an IP literal) under its family; return the family."""
    literal = _literal_of(host, field)
    if literal.family in hosts:
        raise FieldError(
            field,
            f"two {family_name(literal.family)} addresses in {field} {given!r}: "
            "give at most one per family",
        )
    hosts[literal.family] = literal.text
    return literal.family
