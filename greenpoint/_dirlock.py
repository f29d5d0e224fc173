"""A short, best-effort advisory lock on a directory (``flock``).

For a check-then-act on a name inside the directory that every party performs the
same way: greenpoint's UNIX server endpoints check that a socket file is stale and
remove it while holding it, so that two servers clearing the same stale file at
once cannot remove the one the other has just bound in its place.

Best effort: where the directory cannot be opened or locked (no ``fcntl``, a file
system without ``flock``, no read permission) or another holder keeps the lock past
``wait`` seconds, the block runs unlocked. Callers must stay correct without it;
the lock only closes a window.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

import gevent

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["directory_lock"]

# How often a waiter tries again. flock() itself would block the whole process
# (every greenlet), so we poll with LOCK_NB instead.
POLL_INTERVAL = 0.005


@contextlib.contextmanager
def directory_lock(directory: str, *, wait: float) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``directory`` for the ``with`` block.

    Yields whether the lock is held. Waits (only this greenlet) at most ``wait``
    seconds for another holder.
    """
    fd = _open_directory(directory)
    if fd is None:
        yield False
        return
    try:
        yield _lock(fd, wait)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _open_directory(directory: str) -> int | None:
    if fcntl is None:
        return None
    try:
        return os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _lock(fd: int, wait: float) -> bool:
    waited = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or waited >= wait:
                return False  # no flock here (NFS, say), or held for too long
        gevent.sleep(POLL_INTERVAL)
        waited += POLL_INTERVAL
