"""A "listener" that hands out one already connected socket: systemd's ``Accept=yes``.

With ``Accept=yes`` (and ``systemd-socket-activate --accept``, inetd's ``nowait``)
systemd accepts each connection itself and starts one process per connection, with
the connected socket as fd 3. Serving that socket means accepting it once; the port
then stops when its one handler returns (``one_connection``), so the process exits
as systemd expects.
"""

from __future__ import annotations

import errno
from typing import Any

from gevent.event import Event

from greenpoint._address import Address, from_sockaddr

__all__ = ["OneConnectionListener"]


class OneConnectionListener:
    """Follows the listener protocol of :mod:`greenpoint.endpoints._base`, for one socket.

    ``accept()`` returns the connected socket and its peer the first time; later
    calls wait until :meth:`close` and then fail with ``EBADF`` as a closed
    listener does. ``one_connection`` tells the serve loop to stop once that
    connection's handler has returned.
    """

    one_connection = True

    def __init__(self, sock: Any) -> None:
        self.socket = sock
        self.family = sock.family
        self._host = from_sockaddr(sock.family, sock.getsockname())
        self._handed_out = False
        self._closed = Event()

    def accept(self) -> tuple[Any, Any]:
        """The connected socket and its peer's sockaddr, once."""
        if not self._handed_out and not self._closed.is_set():
            self._handed_out = True
            return self.socket, self.socket.getpeername()
        self._closed.wait()
        raise OSError(errno.EBADF, "the one connection was already accepted")

    def get_host(self) -> Address:
        """The local address of the connection (where the client connected to)."""
        return self._host

    def getsockname(self) -> Any:
        return self._host.sockaddr() if hasattr(self._host, "sockaddr") else None

    def fileno(self) -> int:
        return int(self.socket.fileno())

    def close(self) -> None:
        """Close the socket unless it was handed out (its handler owns it then)."""
        if not self._handed_out:
            self._handed_out = True
            self.socket.close()
        self._closed.set()

    def __repr__(self) -> str:
        return f"<OneConnectionListener {self._host}>"
