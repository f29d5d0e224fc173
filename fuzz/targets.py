"""Fuzz targets shared by the hypothesis tests and the atheris harness.

Each target takes arbitrary bytes and raises only when greenpoint misbehaves:
anything but the documented error is a bug.

* :func:`description_target`: ``client_from_string`` and ``server_from_string`` on
  the bytes and on their text; only ``DescriptionError`` may come out.
* :func:`proxy_header_target`: the first byte picks how the rest is split into
  reads; ``ProxyHeaderParser`` may only return ``None``, a ``ProxyHeader``, or raise
  ``ProxyHeaderError``, and the bytes after a header must be exactly what followed it.
"""

from __future__ import annotations

from greenpoint import (
    DescriptionError,
    IPv4Address,
    IPv6Address,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    ProxyTLV,
    UNIXAddress,
    client_from_string,
    encode_proxy_header,
    server_from_string,
)

#: Valid descriptions of every built-in prefix: seeds that mutations start from.
DESCRIPTIONS = [
    "tcp:127.0.0.1:8080",
    "tcp:[::1]:8080:timeout=2.5",
    "tcp:host=example.com:port=80",
    "tcp4:example.com:80:bindAddress=192.0.2.7",
    r"tcp6:fe80\:\:1%eth0:22",
    "tcp:8080",
    "tcp:0:interface=127.0.0.1:backlog=128",
    "tcp6:443:interface=[::1]",
    "tcp6:8080:ipv6only=1:reusePort=1",
    "unix:/run/app.sock:mode=660:lockfile=1",
    "unix:@abstract:timeout=3",
    "fd:3:domain=INET",
    "systemd:domain=INET6:index=0",
    "systemd:domain=UNIX:name=web",
    "ssl:example.com:443:hostname=other.example:caCertsDir=ca.pem:alpn=h2,http/1.1",
    "ssl:8443:privateKey=key.pem:certKey=cert.pem:handshakeTimeout=5",
    "tls:example.com:443:trustRoots=/etc/ssl/certs:minimumVersion=1.3",
    r"tls:example.com:endpoint=unix\:/tmp/x.sock:timeout=3:alpn=h2",
    "tls:/etc/greenpoint/certs:port=443:interface=[::1]",
    "haproxy:tcp:8080",
    "haproxy:timeout=2:allow=10.0.0.0/8:tcp:8080:interface=127.0.0.1",
    "haproxy:allow=[127.0.0.1,::1]:maxSize=4096:tcp6:8080",
    "haproxy:ssl:8443:privateKey=key.pem",
    "stdio:",
]

_SRC4, _DST4 = IPv4Address("192.0.2.1", 56324), IPv4Address("198.51.100.7", 443)
_SRC6, _DST6 = IPv6Address("2001:db8::1", 56324), IPv6Address("2001:db8::2", 443)

#: Valid PROXY headers, v1 and v2, with and without TLVs.
PROXY_HEADERS = [
    encode_proxy_header(_SRC4, _DST4, version=1),
    encode_proxy_header(_SRC6, _DST6, version=1),
    encode_proxy_header(version=1),
    encode_proxy_header(_SRC4, _DST4),
    encode_proxy_header(_SRC6, _DST6, tlvs=[(ProxyTLV.ALPN, b"h2")], checksum=True),
    encode_proxy_header(
        _SRC4, _DST4, tlvs=[(ProxyTLV.AUTHORITY, b"example.com"), (ProxyTLV.UNIQUE_ID, b"u" * 32)]
    ),
    encode_proxy_header(UNIXAddress("/run/a.sock"), UNIXAddress("/run/b.sock")),
    encode_proxy_header(),
]


def description_target(data: bytes) -> None:
    """Parse ``data`` (as bytes and as text) as client and server descriptions."""
    for description in (data, data.decode("utf-8", "replace")):
        for build in (client_from_string, server_from_string):
            try:
                build(description)
            except DescriptionError as error:
                if not str(error):
                    raise AssertionError("a DescriptionError without a message") from error


def proxy_header_target(data: bytes) -> None:
    """Feed ``data[1:]`` to a parser in reads whose sizes ``data[0]`` chooses."""
    if not data:
        return
    step, body = data[0] % 37 + 1, data[1:]
    parser = ProxyHeaderParser(max_size=1024)
    offset = 0
    try:
        while offset < len(body):
            header = parser.feed(body[offset : offset + step])
            offset += step
            if header is not None:
                if not isinstance(header, ProxyHeader):
                    raise AssertionError(f"feed() returned {header!r}")
                consumed = len(body[:offset]) - len(parser.rest)
                if body[consumed:offset] != parser.rest:
                    raise AssertionError("the bytes after the header were changed")
                return
    except ProxyHeaderError as error:
        if not str(error):
            raise AssertionError("a ProxyHeaderError without a message") from error
