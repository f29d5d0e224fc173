"""The PROXY header ``greenpoint relay --send-proxy[-v2]`` sends before each connection.

HAProxy's ``send-proxy`` / ``send-proxy-v2`` (``doc/proxy-protocol.txt``): the
backend learns the accepted client's address and the address it connected to, and,
with v2, when the relay terminated TLS, what the TLS connection was: ALPN, the SNI
name (``AUTHORITY``) and an ``SSL`` TLV with the version, cipher and client
certificate facts. :func:`tls_tlvs` is pure; :func:`header_for` reads the
accepted stream's addresses and TLS state (no I/O).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress, host_address
from greenpoint._proxy_header import ProxyTLV
from greenpoint._proxy_header_encode import encode_proxy_header

__all__ = ["TLSFacts", "header_for", "tls_facts", "tls_tlvs"]

# doc/proxy-protocol.txt §2.2.5-2.2.6
_CLIENT_SSL = 0x01
_CLIENT_CERT_CONN = 0x02
_SUBTYPE_VERSION = 0x21
_SUBTYPE_CN = 0x22
_SUBTYPE_CIPHER = 0x23


@dataclasses.dataclass(frozen=True)
class TLSFacts:
    """What the relay knows about a client's TLS connection."""

    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    server_name: str | None = None
    client_certificate: bool = False
    common_name: str | None = None


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def tls_tlvs(facts: TLSFacts) -> list[tuple[int, bytes]]:
    """The v2 TLVs for a TLS connection, as HAProxy's ``proxy-v2-options ssl,...``.

    ``verify`` is 0 as HAProxy sends it (``X509_V_OK``): the TLS listener refuses
    a client certificate it cannot verify, so one that got here was verified.
    """
    tlvs: list[tuple[int, bytes]] = []
    if facts.alpn:
        tlvs.append((ProxyTLV.ALPN, facts.alpn.encode("ascii", "replace")))
    if facts.server_name:
        tlvs.append((ProxyTLV.AUTHORITY, facts.server_name.encode("ascii", "replace")))
    client = _CLIENT_SSL | (_CLIENT_CERT_CONN if facts.client_certificate else 0)
    body = struct.pack("!BI", client, 0)
    if facts.version:
        body += _tlv(_SUBTYPE_VERSION, facts.version.encode("ascii", "replace"))
    if facts.common_name:
        body += _tlv(_SUBTYPE_CN, facts.common_name.encode("utf-8", "replace"))
    if facts.cipher:
        body += _tlv(_SUBTYPE_CIPHER, facts.cipher.encode("ascii", "replace"))
    tlvs.append((ProxyTLV.SSL, body))
    return tlvs


def tls_facts(stream: Any) -> TLSFacts | None:
    """The TLS facts of an accepted greenpoint TLS stream, or ``None`` for plain ones."""
    if not hasattr(stream, "tls_version") or not hasattr(stream, "peer_certificate"):
        return None
    certificate = stream.peer_certificate
    common_name = None
    if certificate is not None:
        from cryptography.x509.oid import NameOID

        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else None
    return TLSFacts(
        version=stream.tls_version,
        cipher=stream.cipher,
        alpn=stream.alpn_protocol,
        server_name=stream.server_name,
        client_certificate=certificate is not None,
        common_name=common_name,
    )


def header_for(stream: Any, client: Any, version: int) -> bytes:
    """The PROXY header saying that ``client`` connected to ``stream``'s local address.

    Addresses a header cannot carry (a pipe; UNIX in v1; mixed families) give v1
    ``UNKNOWN`` / v2 ``LOCAL``, which tell the backend to use the connection's own.
    """
    try:
        local = host_address(stream)
    except (OSError, AttributeError, ValueError):
        local = None
    tlvs = []
    if version == 2:
        facts = tls_facts(stream)
        if facts is not None:
            tlvs = tls_tlvs(facts)
    addressable = (IPv4Address, IPv6Address) if version == 1 else (
        IPv4Address, IPv6Address, UNIXAddress,
    )  # fmt: skip
    if isinstance(client, addressable) and isinstance(local, addressable):
        try:
            return encode_proxy_header(client, local, version=version, tlvs=tlvs)
        except ValueError:
            pass  # e.g. a UNIX client on an IP listener: say nothing rather than lie
    return encode_proxy_header(version=version, tlvs=tlvs)
