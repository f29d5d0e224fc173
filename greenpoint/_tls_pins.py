"""Public-key pinning for TLS clients: the server's key must be one of the pins.

A pin is ``sha256/BASE64`` of a certificate's DER SubjectPublicKeyInfo (RFC 7469
§2.4, what ``curl --pinnedpubkey`` and HPKP use), so a renewed certificate for the
same key still matches. With CA verification on (the default) pins add to it: the
chain must verify *and* one certificate of the verified chain (leaf, intermediate
or root) must match a pin. With ``verify=0`` the pins replace CA verification: only
the leaf's key is compared, and neither chain nor host name is checked, which is
what one wants for a self-signed peer whose key is known in advance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from greenpoint._tls_context import spki_pin
from greenpoint.errors import TLSVerificationError

__all__ = ["PIN_MISMATCH", "check_pins"]

#: ``TLSVerificationError.reason`` when no certificate matches a pin.
PIN_MISMATCH = "pin mismatch"


def _candidates(stream: Any, verified: bool) -> list[Any]:
    """The certificates a pin may match (``cryptography`` objects)."""
    conn = stream.connection
    chain = conn.get_verified_chain() if verified else None
    if not chain:  # verify=0, or a resumed session (the chain is not kept)
        leaf = conn.get_peer_certificate()
        chain = [] if leaf is None else [leaf]
    return [cert.to_cryptography() for cert in chain]


def check_pins(stream: Any, pins: Sequence[str], *, verified: bool, address: Any) -> None:
    """Close ``stream`` and raise unless a certificate's key matches one of ``pins``.

    Raises:
        TLSVerificationError: ``reason`` is :data:`PIN_MISMATCH`; the message names
            the pins expected and the key the server showed.
    """
    certificates = _candidates(stream, verified)
    seen = [spki_pin(cert) for cert in certificates]
    if any(pin in pins for pin in seen):
        return
    stream.close()
    shown = seen[0] if seen else "no certificate"
    error = TLSVerificationError(
        f"TLS verification of {address} failed: no certificate matches "
        f"pin={','.join(pins)} (the server's key is {shown})",
        address=address,
    )
    cast(Any, error).reason = PIN_MISMATCH  # TLSVerificationError declares no reason
    raise error
