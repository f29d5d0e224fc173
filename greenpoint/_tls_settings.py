"""TLS settings that need no OpenSSL: defaults, version names, ALPN names. Pure.

Kept apart so that building endpoints from descriptions does not import pyOpenSSL;
it is imported when a TLS endpoint is first opened or bound.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MINIMUM_VERSION",
    "DEFAULT_RELOAD_INTERVAL",
    "normalize_alpn",
    "normalize_tls_version",
]

#: TLS 1.0 and 1.1 are deprecated (RFC 8996): nothing older than 1.2 is spoken.
DEFAULT_MINIMUM_VERSION = "TLSv1.2"
#: Seconds a server gives a client to finish its handshake (anyio uses 30 too).
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
#: Seconds between two looks at a server's certificate files.
DEFAULT_RELOAD_INTERVAL = 2.0

_VERSION_SPELLINGS = {
    "tlsv1.2": "TLSv1.2",
    "tls1.2": "TLSv1.2",
    "1.2": "TLSv1.2",
    "tlsv1_2": "TLSv1.2",
    "tlsv1.3": "TLSv1.3",
    "tls1.3": "TLSv1.3",
    "1.3": "TLSv1.3",
    "tlsv1_3": "TLSv1.3",
}


def normalize_tls_version(version: str) -> str:
    """``"TLSv1.2"`` or ``"TLSv1.3"`` from any usual spelling (``1.3``, ``tls1.3``)."""
    canonical = _VERSION_SPELLINGS.get(str(version).strip().lower())
    if canonical is None:
        raise ValueError(
            f"unknown TLS version {version!r}: expected TLSv1.2 or TLSv1.3 "
            "(older versions are not supported, RFC 8996)"
        )
    return canonical


def normalize_alpn(protocols: Iterable[str | bytes] | str | bytes | None) -> tuple[str, ...]:
    """ALPN protocol names as a tuple of text; a string is split on commas."""
    if protocols is None:
        return ()
    if isinstance(protocols, bytes):
        protocols = protocols.decode("ascii")
    if isinstance(protocols, str):
        protocols = protocols.split(",")
    names = []
    for name in protocols:
        text = name.decode("ascii") if isinstance(name, bytes) else str(name)
        text = text.strip()
        # RFC 7301 §3.1: each name is 1 to 255 bytes (we allow printable ASCII).
        if not text or len(text) > 255 or not text.isascii():
            raise ValueError(f"bad ALPN protocol name {text!r}: expected 1 to 255 ASCII bytes")
        names.append(text)
    return tuple(names)
