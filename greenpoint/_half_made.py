"""A descriptor a socket class failed to wrap: who closes it, and only once.

gevent's socket wraps a descriptor in a raw socket first and makes its libev watchers
after. When making them fails, the half-made socket lives on in the error's traceback,
and its raw socket closes the descriptor when collected, whenever that is: by then the
number may belong to another connection or file, which that late close would cut.
:func:`detach_half_made` takes the descriptor back from such raw sockets so that
exactly one owner closes it (``ServedSocket`` detaches its own on failure already).

Only for the failure path: nothing here runs when a socket is made.
"""

from __future__ import annotations

import _socket
import os
from typing import Any

from gevent._socketcommon import SocketMixin

__all__ = ["close_unwrapped", "detach_half_made"]

# gevent's slot for the raw socket its socket wraps, read without its __getattr__
# (which, for a slot not set yet, looks the name up on that same slot, forever).
_RAW_SLOT: Any = SocketMixin.__dict__["_sock"]


def detach_half_made(fd: int, error: BaseException) -> None:
    """Detach every raw socket holding ``fd`` in the frames that raised ``error``.

    The frame that caught ``error`` (the traceback's first) is skipped: it is the
    caller's, and what it holds it owns.
    """
    traceback = error.__traceback__
    traceback = traceback.tb_next if traceback is not None else None
    while traceback is not None:
        for value in traceback.tb_frame.f_locals.values():
            raw = value
            if isinstance(value, SocketMixin):
                try:
                    raw = _RAW_SLOT.__get__(value)
                except AttributeError:  # failed before gevent set its slots
                    continue
            # While fd is open, only the half-made socket can hold its number.
            if isinstance(raw, _socket.socket) and raw.fileno() == fd:
                raw.detach()
        traceback = traceback.tb_next


def close_unwrapped(fd: int, error: BaseException) -> None:
    """Close ``fd``, which a socket class failed to wrap with ``error``, exactly once.

    The class must not have closed ``fd`` itself on the way out (gevent's socket,
    ``ServedSocket`` and ``StampedSocket`` do not): a number closed there may be
    reused before this call, which would then close someone else's.
    """
    detach_half_made(fd, error)
    os.close(fd)
