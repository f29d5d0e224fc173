"""``greenpoint wsgi --pid FILE``: the main process's PID in a file, removed on exit.

The format every init system and ``kill $(cat FILE)`` reads: the decimal PID and a
newline, in a regular file (gunicorn's and nginx's format; greenpoint's UNIX
socket locks, ``_pidlock.py``, are symlinks, which ``PIDFile=`` would not read).
The file is written to a temporary name and renamed, so a reader never sees it
half-written. A file naming a live process other than this one is refused, as
gunicorn does: two servers writing one PID file would confuse whoever reads it.
"""

from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["PidFile", "PidFileError"]

log = logging.getLogger("greenpoint.cli")


class PidFileError(Exception):
    """The PID file names another live process, or cannot be written."""


def _live_pid_in(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read(64).strip()
    except FileNotFoundError:
        return None
    try:
        pid = int(text)
    except ValueError:
        return None  # not ours to trust: overwrite it, as gunicorn does
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


class PidFile:
    """Write this process's PID to ``path``; :meth:`remove` removes it if still ours."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.pid: int | None = None

    def write(self) -> None:
        """Write the file.

        Raises:
            PidFileError: another live process's PID is in it, or it cannot be written.
        """
        other = _live_pid_in(self.path)
        if other is not None:
            raise PidFileError(f"--pid {self.path}: already running as process {other}")
        pid = os.getpid()
        temporary = f"{self.path}.{pid}.tmp"
        try:
            with open(temporary, "w", encoding="ascii") as file:
                file.write(f"{pid}\n")
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise PidFileError(f"--pid {self.path}: cannot write it: {exc.strerror}") from exc
        self.pid = pid

    def remove(self) -> None:
        """Remove the file if it still holds our PID (a forked child does nothing)."""
        if self.pid is None or self.pid != os.getpid():
            return
        try:
            with open(self.path, encoding="ascii", errors="replace") as file:
                if file.read(64).strip() != str(self.pid):
                    return  # replaced by someone else: theirs now
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. a root-only folder after --user
            log.warning("--pid %s: cannot remove it: %s", self.path, exc.strerror)
        self.pid = None
