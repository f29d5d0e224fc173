"""Connect one socket to one address, closing it on every failure. The I/O edge.

OS errors are translated here, once, into greenpoint's errors (``raise ... from``).
"""

from __future__ import annotations

import errno as _errno
import os as _os
import socket as _stdsocket
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket as gsocket

from greenpoint._address import as_address
from greenpoint.errors import (
    ConnectError,
    ConnectRefusedError,
    ConnectTimeoutError,
)

__all__ = ["connect_address", "translate_connect_error", "set_nodelay"]

_REFUSED = {_errno.ECONNREFUSED}
# connect() on a non-blocking socket: wait until writable, then look again.
_IN_PROGRESS = frozenset({_errno.EINPROGRESS, _errno.EWOULDBLOCK, _errno.EALREADY})


def set_nodelay(sock: Any) -> None:
    """Turn Nagle off on a TCP socket (request/response and TLS stall ~40 ms without)."""
    if type(sock) is gsocket.socket:
        # gevent's ``family`` and ``setsockopt`` are Python wrappers (an enum per
        # read); the socket under them answers the same, faster, once per connection.
        sock = sock._sock
    if sock.family in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)


def translate_connect_error(exc: BaseException, address: Any) -> ConnectError:
    """The greenpoint error for an OS-level failure to connect to ``address``."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, _stdsocket.timeout | TimeoutError):
        return ConnectTimeoutError(f"timed out connecting to {address}", address=address)
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if exc.errno in _REFUSED:
            return ConnectRefusedError(
                f"connection refused by {address}: {reason}", address=address, errno=exc.errno
            )
        return ConnectError(
            f"cannot connect to {address}: {reason}", address=address, errno=exc.errno
        )
    return ConnectError(f"cannot connect to {address}: {exc!r}", address=address)


def connect_address(
    family: int,
    sockaddr: Any,
    *,
    timeout: float | None,
    bind_address: Any = None,
    nodelay: bool = True,
    configure: Callable[[Any], None] | None = None,
) -> Any:
    """Open a gevent socket of ``family`` and connect it to ``sockaddr``.

    ``configure`` is called with the fresh socket before it binds or connects (socket
    options: ``greenpoint._sockopts.socket_configurer``); ``nodelay`` sets
    ``TCP_NODELAY`` once connected.

    Blocks only the calling greenlet, for at most ``timeout`` seconds (``None``: no
    limit). The socket is closed on every failure, including ``gevent.Timeout`` and
    ``kill()``, which propagate unchanged.

    Raises:
        ConnectRefusedError, ConnectTimeoutError, ConnectError: naming the address.
    """
    sock = gsocket.socket(family, _stdsocket.SOCK_STREAM)
    try:
        if configure is not None:
            configure(sock)
        if bind_address is not None:
            sock.bind(bind_address)
        if sock.timeout is not None:  # a process-wide socket.setdefaulttimeout()
            sock.settimeout(None)
        _connect(sock, sockaddr, timeout)
        if nodelay:
            set_nodelay(sock)
        return sock
    except (gevent.Timeout, gevent.GreenletExit):
        sock.close()
        raise
    except _TimedOut:
        sock.close()
        address = as_address(family, sockaddr)
        raise ConnectTimeoutError(
            f"timed out after {timeout:g} s connecting to {address}", address=address
        ) from None
    except OSError as exc:
        sock.close()
        raise translate_connect_error(exc, as_address(family, sockaddr)) from exc
    except BaseException:
        sock.close()
        raise


class _TimedOut(BaseException):
    """Thrown into a connecting greenlet by its own timer; never leaves this module."""


def _connect(sock: Any, sockaddr: Any, timeout: float | None) -> None:
    """Connect a gevent socket (timeout ``None``) to a numeric ``sockaddr``.

    What gevent's ``connect()`` does, on the raw non-blocking socket underneath,
    but timed by one bare loop timer made only if the connect has to wait, instead
    of ``settimeout()`` and the ``gevent.Timeout`` object gevent starts per connect
    (a timer, a Python exception instance, two ``settimeout`` calls: a few µs of a
    ~60 µs loopback connect). Raises ``OSError`` or :class:`_TimedOut`.
    """
    raw = sock._sock
    timer = None
    try:
        while True:
            code = raw.connect_ex(sockaddr)
            if not code or code == _errno.EISCONN:
                return
            if code not in _IN_PROGRESS:  # EAGAIN too: a UNIX listener's full queue
                raise OSError(code, _os.strerror(code))
            if timer is None and timeout is not None:
                timer = sock.hub.loop.timer(timeout)
                # update=True: counted from now, not from the loop's last turn (a
                # program that computed for longer than the timeout before
                # connecting would otherwise time out at once).
                timer.start(gevent.getcurrent().throw, _TimedOut, update=True)
            # Closing the socket from another greenlet wakes this wait with EBADF.
            sock.hub.wait(sock._write_event)
            code = raw.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ERROR)
            if code:
                raise OSError(code, _os.strerror(code))
    finally:
        if timer is not None:
            timer.close()
