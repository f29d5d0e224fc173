"""How a proxy handshake went wrong, in the proxy's own words. Pure, no I/O.

The sans-I/O SOCKS (:mod:`greenpoint._socks`) and HTTP CONNECT
(:mod:`greenpoint._http_connect`) modules raise :class:`NegotiationError`; the
proxy endpoints (:mod:`greenpoint.endpoints.proxy`) turn it into a
:class:`~greenpoint.errors.ProxyError` naming the proxy and the target.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NegotiationError"]


class NegotiationError(ValueError):
    """The proxy said no, or said something that is not its protocol.

    ``step`` is what was being negotiated (``"greeting"``, ``"authentication"``,
    ``"CONNECT"``); ``reason`` says why in words; ``reply`` is the proxy's own
    answer (a SOCKS reply code, an HTTP status line) or ``None`` for garbage.
    """

    def __init__(self, step: str, reason: str, reply: Any = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.reply = reply
