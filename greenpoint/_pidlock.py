"""A PID lock file beside a UNIX socket: ``path + ".lock"``. Filesystem I/O only.

The lock is a symbolic link whose *target* is the decimal PID of the holder (the
format of Twisted's ``twisted.python.lockfile``, so a Twisted server and a
greenpoint server refuse each other's socket, and a Twisted client with
``checkPID`` accepts ours). Creating a symlink is atomic and fails when the name
exists, which makes it a mutex between processes; the PID lets anyone tell a live
holder from one that died without cleaning up (``kill(pid, 0)``).

Limits, as with every PID file: a PID recycled by an unrelated process makes a
stale lock look live (the server then refuses to start until the lock is removed),
and the check is meaningless across PID namespaces (containers sharing a folder).
"""

from __future__ import annotations

import errno
import os

__all__ = ["LockHeldError", "PidLock", "lock_holder"]


class LockHeldError(Exception):
    """The lock is held by a live process (``pid``), or holds something we cannot read."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


def _read_pid(path: str) -> int | None:
    """The PID a lock names; ``None`` when there is no lock at ``path``.

    Raises:
        LockHeldError: when ``path`` exists but is not a lock symlink holding a PID
            (we never guess about, or delete, something we did not write).
    """
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # exists, but is not a symlink
            raise LockHeldError(
                f"{path} exists but is not a PID lock (a symlink to a PID); remove it "
                "if no server is running"
            ) from exc
        raise
    try:
        pid = int(target, 10)
    except ValueError:
        raise LockHeldError(
            f"{path} does not hold a PID (it points at {target!r}); remove it if no "
            "server is running"
        ) from None
    if pid <= 0:
        raise LockHeldError(f"{path} holds an impossible PID {pid}")
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to another user
    return True


def lock_holder(path: str) -> int | None:
    """The PID of the live process holding the lock at ``path``, or ``None``.

    Read-only: unlike Twisted's ``isLocked`` this never takes, breaks or writes the
    lock. A missing, unreadable or stale lock gives ``None``.
    """
    try:
        pid = _read_pid(path)
    except (LockHeldError, OSError):
        return None
    if pid is None or not _alive(pid):
        return None
    return pid


class PidLock:
    """Take and release the PID lock at ``path``.

    ``broke_stale`` is true after :meth:`acquire` when it had to remove a lock left
    by a process that no longer exists (so whatever that process left behind is
    stale too).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.locked = False
        self.broke_stale = False

    def acquire(self) -> None:
        """Take the lock for this process.

        Raises:
            LockHeldError: a live process holds it (its PID is ``.pid``), or the path
                holds something that is not a PID lock.
            OSError: the lock could not be written (e.g. the folder is read-only).
        """
        me = str(os.getpid())
        # Each pass either takes the lock, fails, or removes one stale lock; a bound
        # keeps a pathological race (locks created and dying as fast as we look) finite.
        for _ in range(100):
            try:
                os.symlink(me, self.path)
            except FileExistsError:
                pass
            else:
                self.locked = True
                return
            pid = _read_pid(self.path)
            if pid is None:
                continue  # released between our symlink and readlink: try again
            if _alive(pid):
                raise LockHeldError(
                    f"cannot acquire lock {self.path}: held by running process {pid}",
                    pid=pid,
                )
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass  # someone else broke it first; race them for it
            self.broke_stale = True
        raise LockHeldError(f"cannot acquire lock {self.path}: it keeps changing")

    def release(self) -> None:
        """Remove the lock if this process still holds it; safe to call twice."""
        if not self.locked:
            return
        self.locked = False
        try:
            if _read_pid(self.path) == os.getpid():
                os.unlink(self.path)
        except (LockHeldError, OSError):
            pass  # replaced by someone else, or already gone: not ours to remove
