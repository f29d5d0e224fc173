"""Check a server's certificate and say in plain words why it was refused.

The client context's verify callback runs inside the handshake for each certificate
of the chain. It records the first failure on the connection's :class:`VerifyState`
and, once OpenSSL has accepted the chain, checks the leaf against the expected
host name or IP address with ``service_identity`` (RFC 6125). Failing inside the
handshake (rather than after it) makes OpenSSL send the server a proper alert.
"""

from __future__ import annotations

from typing import Any

import service_identity
from cryptography import x509
from OpenSSL import SSL
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

# is_ip_literal is re-exported: the TLS modules ask it here.
from greenpoint._hostnames import encode_idna, is_ip_literal, split_ip_literal
from greenpoint._identity_cache import identity_problem

__all__ = [
    "VerifyState",
    "check_identity",
    "encode_server_name",
    "is_ip_literal",
    "server_name_to_send",
    "verify_callback",
    "verify_reason",
]

_CODES = SSL.X509VerificationCodes
_CODE_NAMES = {
    value: "X509_V_" + name
    for name, value in vars(_CODES).items()
    if name.isupper() and isinstance(value, int)
}

# Short reasons for the codes people meet in practice; the OpenSSL name follows.
_REASONS = {
    _CODES.ERR_CERT_HAS_EXPIRED: "certificate expired",
    _CODES.ERR_CERT_NOT_YET_VALID: "certificate not yet valid",
    _CODES.ERR_DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
    _CODES.ERR_SELF_SIGNED_CERT_IN_CHAIN: "untrusted issuer",
    _CODES.ERR_UNABLE_TO_GET_ISSUER_CERT: "untrusted issuer",
    _CODES.ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "untrusted issuer",
    _CODES.ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: "untrusted issuer",
    _CODES.ERR_CERT_UNTRUSTED: "untrusted issuer",
    _CODES.ERR_CERT_REVOKED: "certificate revoked",
    _CODES.ERR_CERT_SIGNATURE_FAILURE: "bad certificate signature",
    _CODES.ERR_INVALID_CA: "issuer is not a CA",
    _CODES.ERR_INVALID_PURPOSE: "certificate not valid for this purpose",
    _CODES.ERR_HOSTNAME_MISMATCH: "hostname mismatch",
    _CODES.ERR_IP_ADDRESS_MISMATCH: "hostname mismatch",
}

HOSTNAME_MISMATCH = "hostname mismatch"


def verify_reason(code: int) -> tuple[str, str]:
    """``(short reason, OpenSSL's name)`` for an X.509 verification error code."""
    name = _CODE_NAMES.get(code, f"X509 verify error {code}")
    return _REASONS.get(code, "certificate rejected"), name


def encode_server_name(hostname: str) -> bytes:
    """The A-label form of a host name, for SNI (RFC 6066 §3: ASCII, no trailing dot).

    Raises:
        ValueError: naming the host, for a name IDNA cannot encode.
    """
    name = hostname.rstrip(".")
    if name.isascii():
        return name.encode("ascii")
    return encode_idna(name)


def server_name_to_send(hostname: str | None, send_server_name: bool | None) -> bytes | None:
    """The SNI a client sends for ``hostname``, or ``None`` for none.

    ``send_server_name`` ``None`` means: for host names, not for IP literals
    (RFC 6066 §3); ``True``/``False`` force it.

    Raises:
        ValueError: naming the host, for a name IDNA cannot encode.
    """
    if hostname is None:
        return None
    send = not is_ip_literal(hostname) if send_server_name is None else send_server_name
    return encode_server_name(hostname) if send else None


def _reference_id(expected: str) -> str:
    # RFC 6125 §6.4.2: compare A-labels. service_identity would encode a U-label
    # itself, but without the UTS #46 mapping ("BÜCHER.example" would not match).
    name = expected.rstrip(".")
    return name if name.isascii() else encode_idna(name).decode("ascii")


def _subject_text(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "(empty subject)"
    except ValueError:
        return "(unreadable subject)"


def _names_in(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    names += [str(addr) for addr in san.get_values_for_type(x509.IPAddress)]
    return names


def check_identity(cert: x509.Certificate, expected: str) -> str | None:
    """``None`` when ``cert`` is valid for ``expected``, otherwise the reason text."""
    shown = repr(expected)
    try:
        literal = split_ip_literal(expected)
        if literal is not None:
            verify_certificate_ip_address(cert, literal.address)
        else:
            reference = _reference_id(expected)
            if reference != expected.rstrip("."):
                shown += f" ({reference})"
            verify_certificate_hostname(cert, reference)
    except (service_identity.VerificationError, service_identity.CertificateError):
        names = ", ".join(_names_in(cert)) or "no subjectAltName"
        return f"{HOSTNAME_MISMATCH}: the certificate is for {names}, not {shown}"
    return None


class VerifyState:
    """Per-connection verification facts, kept as the connection's app data."""

    __slots__ = ("expected", "reason", "detail")

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.reason: str | None = None  # the short reason ("certificate expired")
        self.detail: str | None = None  # the full sentence

    def fail(self, reason: str, detail: str) -> None:
        if self.reason is None:  # the first failure is the one that matters
            self.reason = reason
            self.detail = detail


def verify_callback(connection: SSL.Connection, cert: Any, code: int, depth: int, ok: int) -> bool:
    """OpenSSL's per-certificate verify callback for greenpoint client contexts."""
    if ok and depth:  # an issuer OpenSSL accepted: there is nothing of ours to check
        return True
    state = connection.get_app_data()
    if not isinstance(state, VerifyState):
        return bool(ok)
    if not ok:
        reason, name = verify_reason(code)
        subject = _subject_text(cert.to_cryptography())
        state.fail(reason, f"{reason} ({name}) for {subject} at depth {depth}")
        return False
    if depth == 0 and state.expected is not None:
        problem = identity_problem(cert, state.expected, check_identity)
        if problem is not None:
            state.fail(HOSTNAME_MISMATCH, problem)
            return False
    return True
