"""PROXY protocol v1/v2 parsing and building: pure values, no sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenpoint import (
    IPv4Address,
    IPv6Address,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    ProxyTLV,
    UNIXAddress,
    encode_proxy_header,
)
from greenpoint._proxy_header import (
    V2_SIGNATURE,
    crc32c,
    header_size,
    parse_header,
)

SRC4 = IPv4Address("192.0.2.10", 56324)
DST4 = IPv4Address("198.51.100.1", 443)
SRC6 = IPv6Address("2001:db8::10", 40000)
DST6 = IPv6Address("2001:db8::1", 8443)
SRC_UNIX = UNIXAddress("/run/client.sock")
DST_UNIX = UNIXAddress("/run/app.sock")


def v2(ver_cmd: int, fam: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([ver_cmd, fam]) + len(body).to_bytes(2, "big") + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


INET_BLOCK = bytes([192, 0, 2, 10, 198, 51, 100, 1]) + struct.pack("!HH", 56324, 443)


# --- version 1 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "source", "destination"),
    [
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n", SRC4, DST4),
        (b"PROXY TCP6 2001:db8::10 2001:db8::1 40000 8443\r\n", SRC6, DST6),
        (
            b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0010 2001:db8::1 0 65535\r\n",
            IPv6Address("2001:db8::10", 0),
            IPv6Address("2001:db8::1", 65535),
        ),
        # A dual-stack proxy's IPv4 client, reported as the rest of greenpoint does.
        (b"PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 56324 8443\r\n", SRC4, DST6),
    ],
)
def test_v1_header_gives_the_original_addresses(line, source, destination):
    header, rest = parse_header(line + b"GET / HTTP/1.0\r\n")
    assert header == ProxyHeader(
        version=1, source=source, destination=destination, transport="STREAM"
    )
    assert rest == b"GET / HTTP/1.0\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",
        # §2.1: whatever follows UNKNOWN is ignored, even the worst case of 107 bytes.
        b"PROXY UNKNOWN " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n",
    ],
)
def test_v1_unknown_means_use_the_connection_addresses(line):
    assert len(line) <= 107
    header, rest = parse_header(line + b"x")
    assert header.version == 1
    assert not header.proxied
    assert header.source is None and header.destination is None
    assert rest == b"x"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\n", "lone CR or LF"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\rX\r\n", "lone CR or LF"),
        (b"PROXY TCP5 192.0.2.10 198.51.100.1 56324 443\r\n", "TCP4, TCP6 or UNKNOWN"),
        (b"PROXY UNKNOWNX\r\n", "TCP4, TCP6 or UNKNOWN"),
        (b"PROXY TCP4  192.0.2.10 198.51.100.1 56324 443\r\n", "single spaces"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n", "single spaces"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 \r\n", "single spaces"),
        (b"PROXY TCP4 192.0.2.010 198.51.100.1 56324 443\r\n", "not IPv4"),
        (b"PROXY TCP4 2001:db8::1 198.51.100.1 56324 443\r\n", "not IPv4"),
        (b"PROXY TCP6 192.0.2.10 2001:db8::1 56324 443\r\n", "not IPv6"),
        (b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 443\r\n", "not IPv6"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 056324 443\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 443\r\n", "not a port"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 65536\r\n", "above 65535"),
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 \xd9\xa1 443\r\n", "not ASCII"),
        (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n", "no CRLF in its first 107"),
        (b"PROXY TCP4 " + b"1" * 200, "no CRLF in its first 107"),
    ],
)
def test_malformed_v1_is_rejected_with_the_reason(data, why):
    with pytest.raises(ProxyHeaderError, match=why):
        parse_header(data)


# --- version 2 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fam", "block", "source", "destination", "transport"),
    [
        (0x11, INET_BLOCK, SRC4, DST4, "STREAM"),
        (0x12, INET_BLOCK, SRC4, DST4, "DGRAM"),
        (
            0x21,
            bytes.fromhex("20010db8" + "0" * 22 + "10")
            + bytes.fromhex("20010db8" + "0" * 22 + "01")
            + struct.pack("!HH", 40000, 8443),
            SRC6,
            DST6,
            "STREAM",
        ),
        (
            0x31,
            b"/run/client.sock".ljust(108, b"\0") + b"/run/app.sock".ljust(108, b"\0"),
            SRC_UNIX,
            DST_UNIX,
            "STREAM",
        ),
        (
            0x31,
            b"\0abstract".ljust(108, b"\0") + b"".ljust(108, b"\0"),
            UNIXAddress("\0abstract"),
            UNIXAddress(None),
            "STREAM",
        ),
    ],
)
def test_v2_header_gives_the_original_addresses(fam, block, source, destination, transport):
    header, rest = parse_header(v2(0x21, fam, block) + b"app")
    assert (header.version, header.command) == (2, "PROXY")
    assert (header.source, header.destination, header.transport) == (
        source,
        destination,
        transport,
    )
    assert header.proxied
    assert rest == b"app"


def test_v2_local_discards_the_address_block_and_keeps_the_data_after_it():
    # §2.2: receivers must skip `len` bytes even for LOCAL, and ignore the family.
    header, rest = parse_header(v2(0x20, 0x11, INET_BLOCK) + b"after")
    assert header == ProxyHeader(version=2, command="LOCAL")
    assert not header.proxied
    assert rest == b"after"


@pytest.mark.parametrize("fam", [0x00, 0x10, 0x01])
def test_v2_unspecified_family_or_transport_uses_the_connection_addresses(fam):
    header, rest = parse_header(v2(0x21, fam, b"whatever it is") + b"z")
    assert header.command == "PROXY"
    assert not header.proxied
    assert rest == b"z"


def test_v2_tlvs_are_exposed_in_order_with_the_registered_ones_decoded():
    ssl_value = (
        bytes([0x07])  # TLS, cert on connection, cert on session
        + (0).to_bytes(4, "big")  # verified
        + tlv(0x21, b"TLSv1.3")
        + tlv(0x22, b"client.example")
        + tlv(0x23, b"TLS_AES_256_GCM_SHA384")
        + tlv(0x24, b"SHA256")
        + tlv(0x25, b"RSA2048")
    )
    body = (
        INET_BLOCK
        + tlv(ProxyTLV.ALPN, b"h2")
        + tlv(ProxyTLV.AUTHORITY, "bücher.example".encode())
        + tlv(ProxyTLV.NOOP, b"\0\0")
        + tlv(ProxyTLV.UNIQUE_ID, b"id-1")
        + tlv(ProxyTLV.SSL, ssl_value)
        + tlv(ProxyTLV.NETNS, b"blue")
        + tlv(0xEA, b"\x01vpce-0123")
        + tlv(0xEA, b"\x01second")
    )
    header, _ = parse_header(v2(0x21, 0x11, body))
    assert header.alpn == b"h2"
    assert header.authority == "bücher.example"
    assert header.unique_id == b"id-1"
    assert header.netns == "blue"
    assert header.tlv(0xEA) == b"\x01vpce-0123"  # the first of duplicates
    assert [kind for kind, _ in header.tlvs] == [1, 2, 4, 5, 0x20, 0x30, 0xEA, 0xEA]
    assert header.tlv(0x99) is None
    ssl = header.ssl
    assert ssl.tls and ssl.client_certificate and ssl.verified
    assert (ssl.version, ssl.cn, ssl.cipher, ssl.sig_alg, ssl.key_alg) == (
        "TLSv1.3",
        "client.example",
        "TLS_AES_256_GCM_SHA384",
        "SHA256",
        "RSA2048",
    )


def test_v2_ssl_tlv_without_a_verified_certificate():
    header, _ = parse_header(v2(0x21, 0x11, INET_BLOCK + tlv(0x20, b"\x01\0\0\0\x01")))
    assert header.ssl.tls
    assert not header.ssl.client_certificate
    assert not header.ssl.verified
    assert header.ssl.version is None


def test_crc32c_matches_the_rfc_4960_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_v2_checksum_is_verified():
    good = encode_proxy_header(SRC4, DST4, tlvs=[(ProxyTLV.ALPN, b"h2")], checksum=True)
    header, _ = parse_header(good)
    assert header.source == SRC4
    assert any(kind == ProxyTLV.CRC32C for kind, _ in header.tlvs)
    tampered = bytearray(good)
    tampered[17] ^= 0x01  # one bit of the source address
    with pytest.raises(ProxyHeaderError, match="CRC32C"):
        parse_header(bytes(tampered))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\r\n\r\n\x00\r\nQUIX\n" + b"\0" * 4, "not a PROXY protocol header"),
        (v2(0x11, 0x11, INET_BLOCK), "unsupported PROXY protocol version 1"),
        (v2(0x22, 0x11, INET_BLOCK), "not LOCAL or PROXY"),
        (v2(0x21, 0x41, INET_BLOCK), "not defined"),
        (v2(0x21, 0x13, INET_BLOCK), "not defined"),
        (v2(0x21, 0x11, INET_BLOCK[:11]), "needs 12"),
        (v2(0x21, 0x21, INET_BLOCK), "needs 36"),
        (v2(0x21, 0x11, INET_BLOCK + b"\x01\x00"), "cut short"),
        (v2(0x21, 0x11, INET_BLOCK + tlv(1, b"h2")[:-1]), "claims 2 bytes but only 1"),
        (v2(0x21, 0x11, INET_BLOCK + tlv(3, b"\0\0\0")), "CRC32C TLV is 3 bytes"),
        (v2(0x21, 0x11, INET_BLOCK + tlv(0x20, b"\x01\0")), "SSL TLV is 2 bytes"),
        (v2(0x21, 0x11, INET_BLOCK + tlv(0x20, b"\x01\0\0\0\0\x21\x00")), "sub-TLV"),
        (v2(0x21, 0x11, INET_BLOCK + b"x" * 20000), "longer than the 16384 allowed"),
    ],
)
def test_malformed_v2_is_rejected_with_the_reason(data, why):
    with pytest.raises(ProxyHeaderError, match=why):
        parse_header(data)


def test_v2_size_limit_is_checked_from_the_fixed_part_alone():
    # 16 bytes announcing 65535 more: refused before any of them is buffered.
    fixed = V2_SIGNATURE + b"\x21\x11\xff\xff"
    with pytest.raises(ProxyHeaderError, match="longer than"):
        header_size(fixed)
    assert header_size(fixed, max_size=16 + 0xFFFF) is None


# --- incremental parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        (b"G", "not a PROXY protocol header"),  # an HTTP client talking to us directly
        (b"\x16\x03\x01", "not a PROXY protocol header"),  # a TLS ClientHello
        (b"PROXZ", "not a PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4\n", "lone CR or LF"),
        (b"\r\n\r\n\x01", "not a PROXY protocol header"),
        (V2_SIGNATURE + b"\x31", "version 3"),
    ],
)
def test_garbage_is_rejected_as_soon_as_it_shows(prefix, why):
    with pytest.raises(ProxyHeaderError, match=why):
        header_size(prefix)


@pytest.mark.parametrize("prefix", [b"P", b"PROXY", b"PROXY TCP4 1.2", b"\r", V2_SIGNATURE])
def test_a_valid_beginning_asks_for_more(prefix):
    assert header_size(prefix) is None


HEADERS = [
    encode_proxy_header(SRC4, DST4, version=1),
    encode_proxy_header(SRC6, DST6, version=1),
    encode_proxy_header(version=1),
    encode_proxy_header(SRC4, DST4),
    encode_proxy_header(SRC6, DST6, tlvs=[(ProxyTLV.UNIQUE_ID, b"u" * 128)], checksum=True),
    encode_proxy_header(SRC_UNIX, DST_UNIX),
    encode_proxy_header(),
]


@pytest.mark.parametrize("raw", HEADERS, ids=range(len(HEADERS)))
def test_header_split_at_any_point_is_assembled(raw):
    data = raw + b"application bytes"
    expected, _ = parse_header(data)
    for cut in range(1, len(data)):
        parser = ProxyHeaderParser()
        first = parser.feed(data[:cut])
        if cut < len(raw):
            assert first is None, cut
            assert parser.feed(data[cut:]) == expected
            assert parser.rest == data[len(raw) :]
        else:
            assert first == expected
            assert parser.rest == data[len(raw) : cut]


@pytest.mark.parametrize("raw", HEADERS, ids=range(len(HEADERS)))
def test_header_fed_one_byte_at_a_time_is_assembled(raw):
    parser = ProxyHeaderParser()
    results = [parser.feed(raw[i : i + 1]) for i in range(len(raw))]
    assert results[:-1] == [None] * (len(raw) - 1)
    assert results[-1] == parse_header(raw)[0]
    assert parser.rest == b""
    with pytest.raises(RuntimeError, match="already complete"):
        parser.feed(b"more")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=10))
def test_any_bytes_in_any_split_give_a_header_none_or_proxyheadererror(data, sizes):
    parser = ProxyHeaderParser(max_size=256)
    offset = 0
    try:
        for size in [*sizes, len(data)]:
            if parser.feed(data[offset : offset + size]) is not None:
                break
            offset += size
    except ProxyHeaderError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(HEADERS),
    st.binary(max_size=20),
    st.lists(st.integers(1, 30), min_size=1, max_size=20),
)
def test_random_splits_give_the_same_header_and_rest(raw, tail, sizes):
    data = raw + tail
    parser = ProxyHeaderParser()
    header, offset = None, 0
    for size in [*sizes, len(data)]:
        header = parser.feed(data[offset : offset + size])
        offset += size
        if header is not None:
            break
    assert header == parse_header(raw)[0]
    assert parser.rest + data[offset:] == tail


# --- building --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination", "version"),
    [
        (SRC4, DST4, 1),
        (SRC6, DST6, 1),
        (SRC4, DST4, 2),
        (SRC6, DST6, 2),
        (SRC_UNIX, DST_UNIX, 2),
        (UNIXAddress("\0abstract"), UNIXAddress(None), 2),
    ],
)
def test_encoded_headers_parse_back(source, destination, version):
    header, rest = parse_header(encode_proxy_header(source, destination, version=version))
    assert (header.version, header.source, header.destination) == (
        version,
        source,
        destination,
    )
    assert rest == b""


def test_v1_encoding_is_the_canonical_line():
    assert encode_proxy_header(SRC4, DST4, version=1) == (
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
    )
    assert encode_proxy_header(version=1) == b"PROXY UNKNOWN\r\n"


def test_v2_without_addresses_is_local():
    assert encode_proxy_header() == V2_SIGNATURE + b"\x20\x00\x00\x00"


def test_mixed_families_are_sent_as_ipv4_mapped_ipv6():
    raw = encode_proxy_header(SRC4, DST6, version=1)
    assert raw == b"PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 56324 8443\r\n"  # RFC 5952 §5
    header, _ = parse_header(raw)
    assert (header.source, header.destination) == (SRC4, DST6)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"source": SRC4}, "both source and destination"),
        ({"destination": DST4}, "both source and destination"),
        ({"source": SRC_UNIX, "destination": DST_UNIX, "version": 1}, "UNIX"),
        ({"source": SRC4, "destination": DST_UNIX}, "UNIX address can only be paired"),
        ({"source": SRC4, "destination": DST4, "version": 1, "tlvs": [(1, b"h2")]}, "v1"),
        ({"version": 3}, "1 or 2"),
        ({"source": IPv4Address("example.com", 1), "destination": DST4}, "not an IP"),
        ({"source": ("192.0.2.1", 1), "destination": DST4}, "expected an IPv4Address"),
        ({"source": UNIXAddress("/" + "x" * 108), "destination": DST_UNIX}, "longer than 108"),
        ({"tlvs": [(1, b"x" * 0xFFFF)]}, "65535 at most"),
    ],
)
def test_bad_encode_arguments_say_what_is_wrong(kwargs, why):
    with pytest.raises(ValueError, match=why):
        encode_proxy_header(**kwargs)
