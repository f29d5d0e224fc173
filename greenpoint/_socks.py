"""The SOCKS5 (RFC 1928, RFC 1929) and SOCKS4a client handshakes as bytes. Pure, no I/O.

Each function builds one request or reads one reply; the endpoint
(:mod:`greenpoint.endpoints.proxy`) sends and receives them in order::

    SOCKS5:  greeting()           -> read 2 bytes  -> parse_method_choice()
             [auth_request()      -> read 2 bytes  -> parse_auth_reply()]   RFC 1929
             connect_request()    -> read 5 bytes  -> reply_length() -> read the rest
                                                   -> parse_connect_reply()
    SOCKS4a: socks4_connect_request() -> read 8 bytes -> parse_socks4_reply()

Every parser raises :class:`~greenpoint._negotiation.NegotiationError` with the
proxy's reply code in words.
"""

from __future__ import annotations

import ipaddress
import struct

from greenpoint._address import IPv4Address, IPv6Address
from greenpoint._hostnames import encode_hostname
from greenpoint._negotiation import NegotiationError

__all__ = [
    "GREETING_REPLY_SIZE",
    "METHOD_NONE",
    "METHOD_USER_PASSWORD",
    "REPLY_HEAD_SIZE",
    "SOCKS4_REPLY_SIZE",
    "SOCKS4_REPLY_WORDS",
    "SOCKS5_REPLY_WORDS",
    "auth_request",
    "connect_request",
    "greeting",
    "parse_auth_reply",
    "parse_connect_reply",
    "parse_method_choice",
    "parse_socks4_reply",
    "reply_length",
    "socks4_connect_request",
]

VERSION_5 = 5
VERSION_4 = 4
AUTH_VERSION = 1  # RFC 1929 §2: the sub-negotiation's own version byte

METHOD_NONE = 0x00  # RFC 1928 §3
METHOD_USER_PASSWORD = 0x02
METHOD_REFUSED = 0xFF

COMMAND_CONNECT = 0x01

ATYP_IPV4 = 0x01  # RFC 1928 §5
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

GREETING_REPLY_SIZE = 2  # VER METHOD
AUTH_REPLY_SIZE = 2  # VER STATUS
# VER REP RSV ATYP and the first address byte: enough to learn the reply's length
# (a domain's length is that fifth byte), and the shortest reply is 10 bytes.
REPLY_HEAD_SIZE = 5
SOCKS4_REPLY_SIZE = 8  # VN CD DSTPORT DSTIP

# RFC 1928 §6, the REP field.
SOCKS5_REPLY_WORDS = {
    0x00: "succeeded",
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}

# The SOCKS4 protocol document (Ying-Da Lee), the CD field of a reply.
SOCKS4_REPLY_WORDS = {
    90: "request granted",
    91: "request rejected or failed",
    92: "rejected: the proxy cannot reach identd on the client",
    93: "rejected: identd reports a different user id",
}
SOCKS4_GRANTED = 90


def _name(host: str) -> bytes:
    """A host name as the proxy should see it: IDNA, 1 to 255 bytes."""
    try:
        encoded = encode_hostname(host).encode("ascii")
    except ValueError as exc:
        raise ValueError(f"cannot send {host!r} to a SOCKS proxy: {exc}") from None
    if not 0 < len(encoded) <= 255:
        raise ValueError(f"a SOCKS host name is 1 to 255 bytes, not {len(encoded)}")
    return encoded


def _check_port(port: int) -> None:
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"port must be from 1 to 65535, not {port}")


# -- SOCKS5 ----------------------------------------------------------------------


def greeting(with_password: bool) -> bytes:
    """The client's first message: the authentication methods it offers (§3).

    With credentials both "none" and "user/password" are offered, as curl does;
    the proxy picks.
    """
    methods = [METHOD_NONE, METHOD_USER_PASSWORD] if with_password else [METHOD_NONE]
    return bytes([VERSION_5, len(methods), *methods])


def parse_method_choice(reply: bytes, with_password: bool) -> int:
    """The method the proxy chose (§3); raises if it chose none we offered."""
    if len(reply) != GREETING_REPLY_SIZE or reply[0] != VERSION_5:
        raise NegotiationError("greeting", f"not a SOCKS5 reply: {bytes(reply)!r}")
    method = reply[1]
    offered = {METHOD_NONE, METHOD_USER_PASSWORD} if with_password else {METHOD_NONE}
    if method == METHOD_REFUSED:
        wants = (
            "a user and password were refused"
            if with_password
            else ("it requires authentication (give user= and password=)")
        )
        raise NegotiationError("greeting", f"no acceptable authentication method: {wants}", method)
    if method not in offered:
        raise NegotiationError(
            "greeting", f"the proxy chose authentication method {method:#04x}, not offered", method
        )
    return method


def auth_request(user: str, password: str) -> bytes:
    """The RFC 1929 username/password request (UTF-8, 1 to 255 bytes each)."""
    user_bytes = user.encode("utf-8")
    password_bytes = password.encode("utf-8")
    for what, value in (("user", user_bytes), ("password", password_bytes)):
        if not 0 < len(value) <= 255:
            raise ValueError(f"a SOCKS5 {what} is 1 to 255 bytes (RFC 1929), not {len(value)}")
    return (
        bytes([AUTH_VERSION, len(user_bytes)])
        + user_bytes
        + bytes([len(password_bytes)])
        + password_bytes
    )


def parse_auth_reply(reply: bytes) -> None:
    """Accept the RFC 1929 reply, or raise: a non-zero status is a failure."""
    # Some servers answer with version 5 instead of 1; the status is what counts.
    if len(reply) != AUTH_REPLY_SIZE or reply[0] not in (AUTH_VERSION, VERSION_5):
        raise NegotiationError("authentication", f"not a SOCKS5 reply: {bytes(reply)!r}")
    if reply[1] != 0:
        raise NegotiationError(
            "authentication", f"user or password refused (status {reply[1]})", reply[1]
        )


def connect_request(host: str, port: int) -> bytes:
    """CONNECT to ``host``:``port`` (§4): an IP literal as an address, else the name.

    Sending the name lets the proxy resolve it (and no DNS query leaves this host).
    """
    _check_port(port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = _name(host)
        target = bytes([ATYP_DOMAIN, len(name)]) + name
    else:
        kind = ATYP_IPV4 if address.version == 4 else ATYP_IPV6
        target = bytes([kind]) + address.packed
    return bytes([VERSION_5, COMMAND_CONNECT, 0]) + target + struct.pack("!H", port)


def reply_length(head: bytes) -> int:
    """The whole reply's length from its first :data:`REPLY_HEAD_SIZE` bytes (§6).

    A refusal is raised here already, so a proxy that sends a short failure reply
    and closes is still reported by its code.
    """
    if len(head) < REPLY_HEAD_SIZE or head[0] != VERSION_5:
        raise NegotiationError("CONNECT", f"not a SOCKS5 reply: {bytes(head)!r}")
    _raise_for_code(head[1])
    kind = head[3]
    if kind == ATYP_IPV4:
        return 4 + 4 + 2
    if kind == ATYP_IPV6:
        return 4 + 16 + 2
    if kind == ATYP_DOMAIN:
        return 4 + 1 + head[4] + 2
    raise NegotiationError("CONNECT", f"unknown address type {kind} in the reply", head[1])


def _raise_for_code(code: int) -> None:
    if code == 0:
        return
    words = SOCKS5_REPLY_WORDS.get(code, "unknown reply code")
    raise NegotiationError("CONNECT", f"{words} (reply {code})", code)


def parse_connect_reply(reply: bytes) -> IPv4Address | IPv6Address | tuple[str, int]:
    """The address the proxy connected from (BND.ADDR, BND.PORT), from a whole reply.

    A domain comes back as ``(name, port)``.
    """
    if len(reply) != reply_length(reply[:REPLY_HEAD_SIZE]):
        raise NegotiationError("CONNECT", f"a SOCKS5 reply of the wrong length: {bytes(reply)!r}")
    kind = reply[3]
    (port,) = struct.unpack("!H", reply[-2:])
    if kind == ATYP_IPV4:
        return IPv4Address(str(ipaddress.IPv4Address(reply[4:8])), port)
    if kind == ATYP_IPV6:
        return IPv6Address(str(ipaddress.IPv6Address(reply[4:20])), port)
    return (reply[5:-2].decode("ascii", "replace"), port)


# -- SOCKS4a ---------------------------------------------------------------------


def socks4_connect_request(host: str, port: int, user_id: str = "") -> bytes:
    """A SOCKS4 CONNECT for an IPv4 literal, SOCKS4a (the name sent) otherwise.

    SOCKS4 has no IPv6: an IPv6 literal is refused here.
    """
    _check_port(port)
    user = user_id.encode("utf-8")
    if b"\0" in user:
        raise ValueError("a SOCKS4 user id cannot contain a NUL byte")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    head = bytes([VERSION_4, COMMAND_CONNECT]) + struct.pack("!H", port)
    if address is None:
        # SOCKS4a: the address 0.0.0.x (x non-zero) says "the name follows".
        return head + bytes([0, 0, 0, 1]) + user + b"\0" + _name(host) + b"\0"
    if address.version != 4:
        raise ValueError(f"SOCKS4 cannot reach the IPv6 address {host} (use socks5:)")
    return head + address.packed + user + b"\0"


def parse_socks4_reply(reply: bytes) -> None:
    """Accept a SOCKS4 reply granting the request, or raise with its code in words."""
    if len(reply) != SOCKS4_REPLY_SIZE or reply[0] != 0:
        raise NegotiationError("CONNECT", f"not a SOCKS4 reply: {bytes(reply)!r}")
    code = reply[1]
    if code != SOCKS4_GRANTED:
        words = SOCKS4_REPLY_WORDS.get(code, "unknown reply code")
        raise NegotiationError("CONNECT", f"{words} (reply {code})", code)
