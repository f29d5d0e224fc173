"""TLS settings that need no OpenSSL: defaults, version names, ALPN names. Pure.

Kept apart so that building endpoints from descriptions does not import pyOpenSSL;
it is imported when a TLS endpoint is first opened or bound.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MINIMUM_VERSION",
    "DEFAULT_RELOAD_INTERVAL",
    "TLSSettingError",
    "check_version_range",
    "normalize_alpn",
    "normalize_ciphers",
    "normalize_groups",
    "normalize_pins",
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


class TLSSettingError(ValueError):
    """A bad TLS setting; ``key`` is its description key (``ciphers``, ``pin`` ...)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


_VERSION_ORDER = {"TLSv1.2": 2, "TLSv1.3": 3}


def check_version_range(minimum: str, maximum: str | None) -> None:
    """``ValueError`` unless ``minimum`` <= ``maximum`` (``None``: no maximum)."""
    if maximum is not None and _VERSION_ORDER[maximum] < _VERSION_ORDER[minimum]:
        raise TLSSettingError(
            "maximumVersion",
            f"maximumVersion {maximum} is below minimumVersion {minimum}: no version is left",
        )


# OpenSSL cipher strings: names, '+', '-', '!', '@SECLEVEL=n', separated by ':' ','
# or spaces (ciphers(1)). Commas let a description avoid escaping every ':'.
_CIPHER_TEXT = re.compile(r"[A-Za-z0-9_+\-!@=.:, ]+", re.ASCII)


def normalize_ciphers(value: str | None) -> str | None:
    """An OpenSSL cipher list for TLS 1.2 and below, commas as separators; checked
    against OpenSSL only when the context is built."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or not _CIPHER_TEXT.fullmatch(text):
        raise TLSSettingError(
            "ciphers",
            "expected OpenSSL cipher names separated by commas, such as "
            f"ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256, not {value!r}",
        )
    return ",".join(part for part in re.split(r"[:, ]+", text) if part)


_GROUP_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)


def normalize_groups(groups: Iterable[str] | str | None) -> tuple[str, ...]:
    """Key-exchange group names (``X25519``, ``P-256``); a string is split on commas."""
    if groups is None:
        return ()
    if isinstance(groups, str):
        groups = groups.replace(":", ",").split(",")
    names = tuple(str(name).strip() for name in groups)
    for name in names:
        if not _GROUP_NAME.fullmatch(name):
            raise TLSSettingError(
                "groups",
                f"expected group names such as X25519,P-256 separated by commas, not {name!r}",
            )
    return names


_PIN_PREFIX = "sha256/"
_SHA256_SIZE = 32
_BASE64_SHA256 = 44  # characters, padding included


def normalize_pins(pins: Iterable[str] | str | None) -> tuple[str, ...]:
    """Public-key pins as ``sha256/BASE64`` (of the DER SubjectPublicKeyInfo, RFC 7469).

    A string is split on commas; ``sha256//BASE64`` (curl's spelling) is accepted too.
    """
    if pins is None:
        return ()
    if isinstance(pins, str):
        pins = pins.split(",")
    result = []
    for pin in pins:
        text = str(pin).strip()
        if not text.lower().startswith(_PIN_PREFIX):
            raise TLSSettingError(
                "pin", f"expected sha256/BASE64 (the SHA-256 of the public key), not {text!r}"
            )
        digest_text = text[len(_PIN_PREFIX) :]
        if len(digest_text) == _BASE64_SHA256 + 1 and digest_text.startswith("/"):
            digest_text = digest_text[1:]  # curl's sha256//BASE64 (a digest may start with /)
        try:
            digest = base64.b64decode(digest_text, validate=True)
        except (binascii.Error, ValueError):
            raise TLSSettingError(
                "pin", f"the part after sha256/ is not base64 in {text!r}"
            ) from None
        if len(digest) != _SHA256_SIZE:
            raise TLSSettingError(
                "pin", f"a SHA-256 digest is 32 bytes, not {len(digest)}, in {text!r}"
            )
        result.append("sha256/" + base64.b64encode(digest).decode("ascii"))
    return tuple(result)
