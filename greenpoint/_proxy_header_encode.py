"""Build a PROXY protocol header (v1 or v2), for clients and tests. Pure, no I/O.

The format is HAProxy's ``doc/proxy-protocol.txt``; ``greenpoint._proxy_header``
parses what this builds.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import cast

from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress
from greenpoint._hostnames import split_ip_literal
from greenpoint._proxy_header import (
    UNIX_PATH_LENGTH,
    V2_AF_INET,
    V2_AF_INET6,
    V2_AF_UNIX,
    V2_SIGNATURE,
    ProxyTLV,
    crc32c,
)

__all__ = ["encode_proxy_header"]


def encode_proxy_header(
    source: IPv4Address | IPv6Address | UNIXAddress | None = None,
    destination: IPv4Address | IPv6Address | UNIXAddress | None = None,
    *,
    version: int = 2,
    tlvs: Iterable[tuple[int, bytes]] = (),
    checksum: bool = False,
) -> bytes:
    """Build a PROXY header saying that ``source`` connected to ``destination``.

    Without addresses the header is v1 ``UNKNOWN`` or v2 ``LOCAL`` (the receiver
    then uses the connection's own addresses). An IPv4 address paired with an IPv6
    one is sent as IPv4-mapped IPv6. v2 only: ``tlvs`` are ``(type, bytes)`` pairs
    and ``checksum=True`` adds a CRC32C TLV.

    Raises:
        ValueError: for a version other than 1 or 2, one address without the other,
            UNIX addresses or TLVs in v1, or a host that is not an IP literal.
    """
    if version not in (1, 2):
        raise ValueError(f"PROXY protocol version must be 1 or 2, not {version!r}")
    if (source is None) != (destination is None):
        raise ValueError("give both source and destination, or neither")
    tlvs = [(int(kind), bytes(value)) for kind, value in tlvs]
    if version == 1:
        if tlvs or checksum:
            raise ValueError("PROXY v1 has no TLVs or checksum; use version=2")
        return _encode_v1(source, destination)
    return _encode_v2(source, destination, tlvs, checksum)


def _encode_v1(
    source: IPv4Address | IPv6Address | UNIXAddress | None,
    destination: IPv4Address | IPv6Address | UNIXAddress | None,
) -> bytes:
    if source is None:
        return b"PROXY UNKNOWN\r\n"
    if isinstance(source, UNIXAddress) or isinstance(destination, UNIXAddress):
        raise ValueError("PROXY v1 cannot carry UNIX addresses; use version=2")
    source_ip, destination_ip = _same_family(source, destination)
    protocol = "TCP4" if source_ip.version == 4 else "TCP6"
    source_text, destination_text = _ip_text(source_ip), _ip_text(destination_ip)
    # encode_proxy_header checked that both addresses are given.
    destination = cast("IPv4Address | IPv6Address", destination)
    return (
        f"PROXY {protocol} {source_text} {destination_text} {source.port} {destination.port}\r\n"
    ).encode("ascii")


def _ip_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # RFC 5952 §5: an IPv4-mapped address ends in dotted decimal (::ffff:192.0.2.1).
    # Python 3.13 prints it so; older ones print ::ffff:c000:201. One form on every
    # Python keeps the header's bytes the same wherever it is built.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def _encode_v2(
    source: IPv4Address | IPv6Address | UNIXAddress | None,
    destination: IPv4Address | IPv6Address | UNIXAddress | None,
    tlvs: list[tuple[int, bytes]],
    checksum: bool,
) -> bytes:
    if source is None:
        command, family_byte, block = 0x0, 0x00, b""
    elif isinstance(source, UNIXAddress) or isinstance(destination, UNIXAddress):
        if not (isinstance(source, UNIXAddress) and isinstance(destination, UNIXAddress)):
            raise ValueError("a UNIX address can only be paired with another UNIX address")
        command, family_byte = 0x1, (V2_AF_UNIX << 4) | 0x1
        block = _unix_bytes(source) + _unix_bytes(destination)
    else:
        source_ip, destination_ip = _same_family(source, destination)
        family = V2_AF_INET if source_ip.version == 4 else V2_AF_INET6
        command, family_byte = 0x1, (family << 4) | 0x1
        block = source_ip.packed + destination_ip.packed
        port = cast("IPv4Address | IPv6Address", destination).port  # both given: checked
        block += struct.pack("!HH", source.port, port)
    if checksum:
        tlvs = [*tlvs, (ProxyTLV.CRC32C, b"\0\0\0\0")]
    body = block + b"".join(
        bytes([kind]) + len(value).to_bytes(2, "big") + value for kind, value in tlvs
    )
    if len(body) > 0xFFFF:
        raise ValueError(f"PROXY v2 addresses and TLVs take {len(body)} bytes; 65535 at most")
    header = V2_SIGNATURE + bytes([0x20 | command, family_byte]) + len(body).to_bytes(2, "big")
    header += body
    if checksum:  # the CRC TLV is last: its value is the final 4 bytes
        header = header[:-4] + crc32c(header).to_bytes(4, "big")
    return header


def _same_family(
    source: IPv4Address | IPv6Address | UNIXAddress | None,
    destination: IPv4Address | IPv6Address | UNIXAddress | None,
) -> tuple[
    ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address
]:
    source_ip = _ip_of(source)
    destination_ip = _ip_of(destination)
    if source_ip.version != destination_ip.version:
        # A dual-stack proxy may pair an IPv4 client with an IPv6 listener: map to v6.
        source_ip, destination_ip = _as_v6(source_ip), _as_v6(destination_ip)
    return source_ip, destination_ip


def _ip_of(address: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(address, IPv4Address | IPv6Address):
        raise ValueError(f"expected an IPv4Address, IPv6Address or UNIXAddress, not {address!r}")
    literal = split_ip_literal(address.host)
    if literal is None:
        raise ValueError(f"{address.host!r} is not an IP address")
    return literal.ip_address()


def _as_v6(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ip if ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{ip}")


def _unix_bytes(address: UNIXAddress) -> bytes:
    raw = (address.name or "").encode("utf-8", "surrogateescape")
    if len(raw) > UNIX_PATH_LENGTH:
        raise ValueError(f"UNIX path {address.name!r} is longer than {UNIX_PATH_LENGTH} bytes")
    return raw.ljust(UNIX_PATH_LENGTH, b"\0")
