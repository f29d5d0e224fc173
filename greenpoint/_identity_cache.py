"""The host-name check of a server certificate, remembered per certificate and name.

Checking a certificate's names against the expected host (``service_identity``, RFC
6125) is pure Python and costs about a tenth of a whole TLS handshake here; a client
that connects to the same server again gets the same certificate and would check it
again. The answer depends only on the certificate's bytes and the expected name, so
it is kept, keyed by exactly those (the certificate's DER encoding itself, not a
digest of it), for the last :data:`MAX_ANSWERS` pairs. The chain is still verified
by OpenSSL in every handshake; only the name check is remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography import x509
from OpenSSL import crypto

__all__ = ["MAX_ANSWERS", "identity_problem"]

# Enough for the servers a process talks to; each entry holds one DER certificate.
MAX_ANSWERS = 128

_answers: OrderedDict[tuple[bytes, str], str | None] = OrderedDict()


def identity_problem(
    cert: Any, expected: str, check: Callable[[x509.Certificate, str], str | None]
) -> str | None:
    """``check(cert, expected)`` for a pyOpenSSL certificate, remembered.

    ``None`` when ``cert`` is valid for ``expected``, else the reason ``check`` gave.
    """
    key = (crypto.dump_certificate(crypto.FILETYPE_ASN1, cert), expected)
    try:
        answer = _answers[key]
    except KeyError:
        answer = check(x509.load_der_x509_certificate(key[0]), expected)
        _answers[key] = answer
        if len(_answers) > MAX_ANSWERS:
            _answers.popitem(last=False)
        return answer
    _answers.move_to_end(key)
    return answer
