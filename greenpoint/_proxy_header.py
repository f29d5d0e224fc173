"""The PROXY protocol, versions 1 and 2: measure and parse headers. Pure, no I/O.

A proxy (HAProxy, AWS NLB, nginx ``stream``) that opens a connection on behalf of a
client puts one header in front of the client's bytes, saying who the client was.
The specification is HAProxy's ``doc/proxy-protocol.txt`` (section numbers below
refer to it; Debian ships it as ``/usr/share/doc/haproxy/proxy-protocol.txt.gz``).

Three layers, each usable alone:

* :func:`header_size` looks at the bytes received so far and says how long the
  header is, or that more bytes are needed, or raises as soon as the bytes cannot
  be a header. The I/O layer uses it with ``MSG_PEEK`` to read exactly the header
  and not one byte of the application's data.
* :func:`parse_header` turns complete header bytes into a :class:`ProxyHeader`;
  :class:`ProxyHeaderParser` does both incrementally (feed it any split).

Building a header (for clients and tests) is ``greenpoint._proxy_header_encode``.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import struct

from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress
from greenpoint.errors import ProxyHeaderError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyTLV",
    "SSLInfo",
    "crc32c",
    "header_size",
    "parse_header",
]

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # §2.1: the worst case "PROXY UNKNOWN <v6> <v6> 65535 65535\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # §2.2, 12 bytes
V2_FIXED_LENGTH = 16  # signature, version/command, family/transport, length
# HAProxy never sends more than its default tune.bufsize (16 KiB); anything longer
# is refused before it is buffered. The format itself allows 16 + 65535 bytes.
DEFAULT_MAX_SIZE = 16384

_V2_COMMANDS = {0x0: "LOCAL", 0x1: "PROXY"}
_V2_TRANSPORTS = {0x0: None, 0x1: "STREAM", 0x2: "DGRAM"}
V2_AF_UNSPEC, V2_AF_INET, V2_AF_INET6, V2_AF_UNIX = 0x0, 0x1, 0x2, 0x3  # §2.2, high nibble
ADDRESS_BLOCK_LENGTH = {V2_AF_INET: 12, V2_AF_INET6: 36, V2_AF_UNIX: 216}  # §2.2
UNIX_PATH_LENGTH = 108


class ProxyTLV(enum.IntEnum):
    """Registered v2 TLV types (§2.2); ``0xE0``-``0xEF`` are for applications
    (AWS NLB uses ``0xEA`` for the VPC endpoint id)."""

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    NETNS = 0x30


class _SSLSubtype(enum.IntEnum):
    VERSION = 0x21
    CN = 0x22
    CIPHER = 0x23
    SIG_ALG = 0x24
    KEY_ALG = 0x25


_CLIENT_SSL = 0x01
_CLIENT_CERT_CONN = 0x02
_CLIENT_CERT_SESS = 0x04


@dataclasses.dataclass(frozen=True)
class SSLInfo:
    """What the proxy knew about the client's TLS connection (the ``SSL`` TLV, §2.2.6).

    ``client`` is the bit field (1: TLS, 2: certificate on this connection, 4: on
    this session); ``verify`` is 0 when a client certificate was verified.
    """

    client: int
    verify: int
    version: str | None = None
    cn: str | None = None
    cipher: str | None = None
    sig_alg: str | None = None
    key_alg: str | None = None

    @property
    def tls(self) -> bool:
        """The client spoke TLS to the proxy."""
        return bool(self.client & _CLIENT_SSL)

    @property
    def client_certificate(self) -> bool:
        """The client presented a certificate (on this connection or its session)."""
        return bool(self.client & (_CLIENT_CERT_CONN | _CLIENT_CERT_SESS))

    @property
    def verified(self) -> bool:
        """The client presented a certificate and the proxy verified it."""
        return self.client_certificate and self.verify == 0


@dataclasses.dataclass(frozen=True)
class ProxyHeader:
    """A parsed PROXY header.

    ``source``/``destination`` are the original client and the address it connected
    to, or ``None`` when the header says to use the connection's own addresses
    (v2 ``LOCAL``, v1 ``UNKNOWN``, an unspecified family). ``tlvs`` are the v2
    type-length-value pairs in order (duplicates kept); :meth:`tlv` and the
    properties pick out the registered ones.
    """

    version: int
    command: str = "PROXY"
    source: IPv4Address | IPv6Address | UNIXAddress | None = None
    destination: IPv4Address | IPv6Address | UNIXAddress | None = None
    transport: str | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()
    ssl: SSLInfo | None = None

    @property
    def proxied(self) -> bool:
        """The header names an original client (not LOCAL/UNKNOWN/unspecified)."""
        return self.source is not None

    def tlv(self, kind: int) -> bytes | None:
        """The value of the first TLV of type ``kind``, or ``None``."""
        for found, value in self.tlvs:
            if found == kind:
                return value
        return None

    @property
    def alpn(self) -> bytes | None:
        """The application protocol the client negotiated with the proxy (``b"h2"``)."""
        return self.tlv(ProxyTLV.ALPN)

    @property
    def authority(self) -> str | None:
        """The host name the client asked for (TLS SNI), if the proxy passed it on."""
        value = self.tlv(ProxyTLV.AUTHORITY)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def unique_id(self) -> bytes | None:
        """The proxy's opaque id of this connection (HAProxy's ``unique-id``)."""
        return self.tlv(ProxyTLV.UNIQUE_ID)

    @property
    def netns(self) -> str | None:
        """The network namespace the proxy accepted the connection in."""
        value = self.tlv(ProxyTLV.NETNS)
        return None if value is None else value.decode("ascii", "replace")


# --- measuring -------------------------------------------------------------------------


def header_size(data: bytes | bytearray, max_size: int = DEFAULT_MAX_SIZE) -> int | None:
    """How many bytes of ``data`` (the start of a connection) are the PROXY header.

    Returns ``None`` while the header is incomplete; every byte received so far then
    belongs to it.

    Raises:
        ProxyHeaderError: as soon as ``data`` cannot start a valid header, or the
            header would be longer than ``max_size`` (v1 lines are limited to 107).
    """
    if not data:
        return None
    if data[0] == V2_SIGNATURE[0]:
        return _v2_size(data, max_size)
    if data[0] == V1_PREFIX[0]:
        return _v1_size(data)
    raise ProxyHeaderError(f"not a PROXY protocol header: starts with {_preview(data)}")


def _v2_size(data: bytes | bytearray, max_size: int) -> int | None:
    seen = min(len(data), len(V2_SIGNATURE))
    if data[:seen] != V2_SIGNATURE[:seen]:
        raise ProxyHeaderError(f"not a PROXY protocol header: starts with {_preview(data)}")
    if len(data) > len(V2_SIGNATURE) and data[12] >> 4 != 2:
        raise ProxyHeaderError(f"unsupported PROXY protocol version {data[12] >> 4} (v2 only)")
    if len(data) < V2_FIXED_LENGTH:
        return None
    total = V2_FIXED_LENGTH + int.from_bytes(data[14:16], "big")
    if total > max_size:
        raise ProxyHeaderError(
            f"PROXY v2 header of {total} bytes is longer than the {max_size} allowed"
        )
    return total if len(data) >= total else None


def _v1_size(data: bytes | bytearray) -> int | None:
    seen = min(len(data), len(V1_PREFIX))
    if data[:seen] != V1_PREFIX[:seen]:
        raise ProxyHeaderError(f"not a PROXY protocol header: starts with {_preview(data)}")
    window = data[:V1_MAX_LENGTH]
    end = window.find(b"\r\n")
    line = window[:end] if end >= 0 else window
    # §2.1: a lone CR or LF must not end the line. A CR last in an incomplete line
    # may still be followed by its LF.
    pending_cr = end < 0 and line.endswith(b"\r")
    if b"\n" in line or b"\r" in (line[:-1] if pending_cr else line):
        raise ProxyHeaderError("PROXY v1 line ends with a lone CR or LF instead of CRLF")
    if end >= 0:
        return end + 2
    if len(data) >= V1_MAX_LENGTH:
        raise ProxyHeaderError(f"PROXY v1 line has no CRLF in its first {V1_MAX_LENGTH} bytes")
    return None


def _preview(data: bytes | bytearray) -> str:
    return repr(bytes(data[:16])) + ("..." if len(data) > 16 else "")


# --- parsing ---------------------------------------------------------------------------


def parse_header(
    data: bytes | bytearray, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[ProxyHeader, bytes]:
    """Parse the header at the start of ``data``; return it and the bytes after it.

    Raises:
        ProxyHeaderError: if the header is malformed, too long, or incomplete.
    """
    size = header_size(data, max_size)
    if size is None:
        raise ProxyHeaderError(f"incomplete PROXY header ({len(data)} bytes)")
    raw = bytes(data[:size])
    header = _parse_v2(raw) if raw[0] == V2_SIGNATURE[0] else _parse_v1(raw)
    return header, bytes(data[size:])


class ProxyHeaderParser:
    """Assemble a header from reads of any size: ``feed(data)`` until it returns one.

    After the header is complete, :attr:`rest` holds the bytes that came after it
    (the application's first bytes).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.header: ProxyHeader | None = None
        self.rest = b""
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> ProxyHeader | None:
        """Add received bytes; return the header once complete, else ``None``.

        Raises:
            ProxyHeaderError: as soon as the bytes cannot be a valid header.
        """
        if self.header is not None:
            raise RuntimeError("the PROXY header is already complete; read .rest")
        self._buffer += data
        if header_size(self._buffer, self.max_size) is None:
            return None
        self.header, self.rest = parse_header(self._buffer, self.max_size)
        self._buffer = bytearray()
        return self.header


def _parse_v1(raw: bytes) -> ProxyHeader:
    try:
        line = raw[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    fields = line.split(" ")
    protocol = fields[1] if len(fields) > 1 else ""
    if protocol == "UNKNOWN":
        # §2.1: the receiver ignores whatever follows UNKNOWN and uses the real addresses.
        return ProxyHeader(version=1)
    if protocol not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, not {protocol!r}")
    if len(fields) != 6:
        raise ProxyHeaderError(
            f"PROXY v1 {protocol} line needs 4 fields separated by single spaces: {line!r}"
        )
    version = 4 if protocol == "TCP4" else 6
    source_ip = _v1_ip(fields[2], version, "source")
    destination_ip = _v1_ip(fields[3], version, "destination")
    source_port = _v1_port(fields[4], "source")
    destination_port = _v1_port(fields[5], "destination")
    return ProxyHeader(
        version=1,
        source=_ip_address(source_ip, source_port),
        destination=_ip_address(destination_ip, destination_port),
        transport="STREAM",
    )


def _v1_ip(text: str, version: int, role: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        if "%" in text:  # a scope id has no meaning across hosts
            raise ValueError
        # ipaddress refuses leading zeros in IPv4, as §2.1 asks.
        return ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 {role} address {text!r} is not IPv{version}") from None


def _v1_port(text: str, role: str) -> int:
    # §2.1: decimal, 0..65535, no leading zeros.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"PROXY v1 {role} port {text!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"PROXY v1 {role} port {text!r} is above 65535")
    return port


def _ip_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> IPv4Address | IPv6Address:
    # Match what a dual-stack listener reports: IPv4-mapped IPv6 is plain IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return IPv4Address(str(ip), port)
    return IPv6Address(str(ip), port)


def _parse_v2(raw: bytes) -> ProxyHeader:
    command = _V2_COMMANDS.get(raw[12] & 0x0F)
    if command is None:
        raise ProxyHeaderError(f"PROXY v2 command {raw[12] & 0x0F:#x} is not LOCAL or PROXY")
    family, transport_code = raw[13] >> 4, raw[13] & 0x0F
    if family not in (V2_AF_UNSPEC, *ADDRESS_BLOCK_LENGTH) or transport_code not in _V2_TRANSPORTS:
        raise ProxyHeaderError(f"PROXY v2 family/transport byte {raw[13]:#04x} is not defined")
    if command == "LOCAL":
        # §2.2: use the real endpoints and discard the whole block, family included.
        return ProxyHeader(version=2, command="LOCAL")
    if family == V2_AF_UNSPEC or transport_code == 0:
        # §2.2: unspecified: accept, ignore the address block (its layout is unknown).
        return ProxyHeader(version=2)
    block = raw[V2_FIXED_LENGTH:]
    needed = ADDRESS_BLOCK_LENGTH[family]
    if len(block) < needed:
        raise ProxyHeaderError(
            f"PROXY v2 address block is {len(block)} bytes; this family needs {needed}"
        )
    source, destination = _v2_addresses(family, block[:needed])
    tlvs = _parse_tlvs(block[needed:], "PROXY v2 TLV")
    _check_crc32c(raw, tlvs, V2_FIXED_LENGTH + needed)
    ssl_value = next((value for kind, value in tlvs if kind == ProxyTLV.SSL), None)
    return ProxyHeader(
        version=2,
        source=source,
        destination=destination,
        transport=_V2_TRANSPORTS[transport_code],
        tlvs=tuple(tlvs),
        ssl=None if ssl_value is None else _parse_ssl(ssl_value),
    )


def _v2_addresses(
    family: int, block: bytes
) -> tuple[IPv4Address | IPv6Address | UNIXAddress, IPv4Address | IPv6Address | UNIXAddress]:
    if family == V2_AF_INET:
        source_port, destination_port = struct.unpack("!HH", block[8:12])
        return (
            _ip_address(ipaddress.IPv4Address(block[0:4]), source_port),
            _ip_address(ipaddress.IPv4Address(block[4:8]), destination_port),
        )
    if family == V2_AF_INET6:
        source_port, destination_port = struct.unpack("!HH", block[32:36])
        return (
            _ip_address(ipaddress.IPv6Address(block[0:16]), source_port),
            _ip_address(ipaddress.IPv6Address(block[16:32]), destination_port),
        )
    return _unix_address(block[:UNIX_PATH_LENGTH]), _unix_address(block[UNIX_PATH_LENGTH:])


def _unix_address(raw: bytes) -> UNIXAddress:
    if raw[:1] == b"\0":
        name = raw[1:].rstrip(b"\0")
        # A leading NUL with a name after it is Linux's abstract namespace.
        return UNIXAddress("\0" + name.decode("utf-8", "surrogateescape") if name else None)
    return UNIXAddress(raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))


def _parse_tlvs(data: bytes, what: str) -> list[tuple[int, bytes]]:
    tlvs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise ProxyHeaderError(f"{what} at offset {offset} is cut short")
        kind = data[offset]
        length = int.from_bytes(data[offset + 1 : offset + 3], "big")
        value = data[offset + 3 : offset + 3 + length]
        if len(value) != length:
            raise ProxyHeaderError(
                f"{what} type {kind:#04x} claims {length} bytes but only {len(value)} remain"
            )
        tlvs.append((kind, value))
        offset += 3 + length
    return tlvs


def _check_crc32c(raw: bytes, tlvs: list[tuple[int, bytes]], first_tlv_offset: int) -> None:
    # §2.2.3: the checksum covers the whole header with its own 4 bytes zeroed.
    offset = first_tlv_offset
    for kind, value in tlvs:
        if kind == ProxyTLV.CRC32C:
            if len(value) != 4:
                raise ProxyHeaderError(f"PROXY v2 CRC32C TLV is {len(value)} bytes, not 4")
            zeroed = raw[: offset + 3] + b"\0\0\0\0" + raw[offset + 7 :]
            if crc32c(zeroed) != int.from_bytes(value, "big"):
                raise ProxyHeaderError("PROXY v2 header fails its CRC32C checksum")
        offset += 3 + len(value)


def _parse_ssl(value: bytes) -> SSLInfo:
    if len(value) < 5:
        raise ProxyHeaderError(f"PROXY v2 SSL TLV is {len(value)} bytes; it needs at least 5")
    client = value[0]
    verify = int.from_bytes(value[1:5], "big")
    fields: dict[str, str] = {}
    for kind, sub_value in _parse_tlvs(value[5:], "PROXY v2 SSL sub-TLV"):
        if kind in _SSLSubtype._value2member_map_:
            fields.setdefault(_SSLSubtype(kind).name.lower(), sub_value.decode("utf-8", "replace"))
    return SSLInfo(client=client, verify=verify, **fields)


# --- CRC32C (RFC 4960 appendix B: Castagnoli polynomial, reflected) ---------------------


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC32C (Castagnoli) checksum of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
