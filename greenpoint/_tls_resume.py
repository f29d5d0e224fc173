"""Client TLS session resumption: remember the last session, offer it next time.

A resumed handshake skips the certificate exchange and the key agreement's costly
signature checks (RFC 8446 §2.2, RFC 5077). The session is kept per client options
object, which is per server name, and only offered with the same ``SSL.Context``.

TLS 1.2 sessions are complete when the handshake ends. A TLS 1.3 server sends its
tickets *after* the handshake, and OpenSSL reads them with the next application
data, making a new session object; so the session is taken again when the stream is
released, and kept only if it is a new one (the one from the handshake, without a
ticket, could not be resumed).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL

__all__ = ["SessionCache"]


class SessionCache:
    """The one session a client offers next; safe to share between greenlets."""

    def __init__(self) -> None:
        self._session: SSL.Session | None = None

    def offer(self) -> SSL.Session | None:
        """The session to offer in the next handshake, or ``None``."""
        return self._session

    def remember(self, stream: Any) -> None:
        """After a handshake: keep its session now (TLS 1.2) or at release (1.3)."""
        conn = stream.connection
        if conn.get_protocol_version() != SSL.TLS1_3_VERSION:
            self._session = conn.get_session()
            return
        # Held (not just its address) so that its memory cannot be reused by the
        # session a ticket makes, which would then look like the same one.
        at_handshake = conn.get_session()

        def keep_ticketed(connection: SSL.Connection) -> None:
            session = connection.get_session()
            if session is not None and not _same(session, at_handshake):
                self._session = session

        stream.on_release = keep_ticketed


def _same(one: SSL.Session, other: SSL.Session | None) -> bool:
    # OpenSSL makes a new SSL_SESSION for each ticket; the pointers tell them apart.
    return other is not None and one._session == other._session
