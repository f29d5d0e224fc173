"""What ``transport.startTLS(options)`` needs from the TLS layer: a check and a handshake.

Kept apart from the transport so that a plain TCP connection never imports
pyOpenSSL: these run only when a protocol asks for STARTTLS.
"""

from __future__ import annotations

from typing import Any

from greenpoint._tls_settings import DEFAULT_HANDSHAKE_TIMEOUT

__all__ = ["check_options", "handshake"]


def check_options(options: Any) -> None:
    """Raise ``TypeError`` now, in the caller, for options ``startTLS`` cannot use."""
    from OpenSSL import SSL

    from greenpoint import tls

    accepted = (tls.ClientTLSOptions, tls.ServerTLSOptions, tls.SNIServerOptions, SSL.Context)
    if not isinstance(options, accepted):
        raise TypeError(
            "startTLS takes options_for_client_tls(...) (client side), "
            "options_for_server_tls(...), SNIServerOptions or an OpenSSL.SSL.Context "
            f"(server side), not {type(options).__name__}"
        )


def handshake(options: Any, raw: Any, address: Any) -> Any:
    """Run the handshake over the connection's stream; return the TLS stream.

    Client options make us the client (the server's certificate is verified as for
    ``tls:``); anything else makes us the server. Blocks the calling greenlet (the
    connection's reader) for at most ``DEFAULT_HANDSHAKE_TIMEOUT`` seconds; ``raw``
    is closed on failure.
    """
    from greenpoint import tls

    if isinstance(options, tls.ClientTLSOptions):
        return options.handshake(raw, DEFAULT_HANDSHAKE_TIMEOUT, address)
    return tls.wrap_server_stream(raw, options, DEFAULT_HANDSHAKE_TIMEOUT, address)
