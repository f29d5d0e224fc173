"""The HTTP CONNECT tunnel handshake (RFC 9110 §9.3.6) as bytes. Pure, no I/O.

:func:`connect_request` builds the request, with Basic proxy authentication
(RFC 7617, RFC 9110 §11.7.2) when a user is given; :func:`head_end` finds where the
proxy's response head ends in what was read so far, and :func:`parse_response`
accepts a 2xx or raises with the proxy's status line. Whatever follows the head
belongs to the tunnel, which is why the endpoint reads no further than the head.
"""

from __future__ import annotations

import base64
import ipaddress
import re

from greenpoint._hostnames import encode_hostname
from greenpoint._negotiation import NegotiationError

__all__ = ["MAX_HEAD_SIZE", "connect_request", "head_end", "parse_response", "authority"]

# A proxy's answer to CONNECT is a status line and a few headers; more than this is
# not an HTTP proxy talking (and must not make us buffer without end).
MAX_HEAD_SIZE = 16384

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


def authority(host: str, port: int) -> str:
    """``host:port`` as a request target (RFC 9110 §7.2): IPv6 in brackets, IDNA names."""
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"port must be from 1 to 65535, not {port}")
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    except ValueError:
        pass  # a name
    try:
        name = encode_hostname(host)
    except ValueError as exc:
        raise ValueError(f"cannot ask an HTTP proxy for {host!r}: {exc}") from None
    if _FORBIDDEN.search(name):
        raise ValueError(f"cannot ask an HTTP proxy for {host!r}: it contains spaces or controls")
    return f"{name}:{port}"


def connect_request(
    host: str, port: int, user: str | None = None, password: str | None = None
) -> bytes:
    """``CONNECT host:port HTTP/1.1`` with its ``Host`` and, with a user, Basic auth."""
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if user is not None:
        if ":" in user:
            raise ValueError("a Basic authentication user cannot contain ':' (RFC 7617)")
        pair = f"{user}:{password or ''}".encode()
        if re.search(rb"[\x00-\x1f\x7f]", pair):
            raise ValueError("a proxy user or password cannot contain control characters")
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(pair).decode("ascii"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def head_end(data: bytes) -> int | None:
    """The length of the response head (through its blank line) in ``data``, if complete.

    A bare LF is accepted as a line end, as RFC 9112 §2.2 allows a recipient to.

    Raises:
        NegotiationError: no end within :data:`MAX_HEAD_SIZE` bytes, or the first
            bytes are not an HTTP response at all.
    """
    if len(data) >= 5 and not data.startswith(b"HTTP/"):
        raise NegotiationError("CONNECT", f"not an HTTP response: {_shown(data)}")
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    if ends:
        return min(ends)
    if len(data) >= MAX_HEAD_SIZE:
        raise NegotiationError("CONNECT", f"the response head is longer than {MAX_HEAD_SIZE} bytes")
    return None


def parse_response(head: bytes) -> str:
    """Accept a 2xx response head and return its status line, or raise with it.

    Raises:
        NegotiationError: ``reply`` is the status line; 407 says the credentials
            were missing or refused.
    """
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise NegotiationError("CONNECT", f"not an HTTP status line: {_shown(line)}")
    status = int(match.group(3))
    text = line.decode("latin-1")
    if 200 <= status < 300:
        return text
    hint = ""
    if status == 407:
        hint = " (proxy authentication required: give user= and password=, or check them)"
    raise NegotiationError("CONNECT", f"the proxy answered {text!r}{hint}", text)


def _shown(data: bytes) -> str:
    return repr(bytes(data[:64])) + ("..." if len(data) > 64 else "")
