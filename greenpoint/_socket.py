"""Connect one socket to one address, closing it on every failure. The I/O edge.

OS errors are translated here, once, into greenpoint's errors (``raise ... from``).
"""

from __future__ import annotations

import errno as _errno
import socket as _stdsocket
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket as gsocket

from greenpoint._address import from_sockaddr
from greenpoint.errors import (
    ConnectError,
    ConnectRefusedError,
    ConnectTimeoutError,
)

__all__ = ["connect_address", "translate_connect_error", "set_nodelay"]

_REFUSED = {_errno.ECONNREFUSED}
_IN_PROGRESS = {_errno.EINPROGRESS, _errno.EAGAIN, _errno.EWOULDBLOCK}


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
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.settimeout(None)
        if nodelay:
            set_nodelay(sock)
        return sock
    except (gevent.Timeout, gevent.GreenletExit):
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        address = _describe(family, sockaddr)
        if timeout == 0 and exc.errno in _IN_PROGRESS:
            # settimeout(0) made the socket non-blocking: the connect had no time at
            # all, which is a timeout, not the "Operation now in progress" it reports.
            raise ConnectTimeoutError(
                f"timed out after 0 s connecting to {address}", address=address
            ) from exc
        raise translate_connect_error(exc, address) from exc
    except BaseException:
        sock.close()
        raise


def _describe(family: int, sockaddr: Any) -> Any:
    try:
        return from_sockaddr(family, sockaddr)
    except (ValueError, IndexError, TypeError):
        return sockaddr
