"""How a child process is set up beyond argv: user, group, a terminal, extra descriptors.

What Twisted's ``spawnProcess`` offers as ``uid``, ``gid``, ``usePTY`` and ``childFDs``,
turned into ``Popen`` arguments. The checks are pure (:func:`check_child_fds`,
:func:`credential_error`) so that a bad value is an error naming it before anything
is forked; only :func:`child_preexec` runs in the child, between fork and exec.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pwd
import termios
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ChildSetup", "check_child_fds", "child_preexec", "credential_error", "popen_user"]

# The child's 0, 1 and 2 are its stdin, stdout and stderr, which the endpoint wires.
FIRST_EXTRA_FD = 3


@dataclasses.dataclass(frozen=True)
class ChildSetup:
    """``uid``/``gid`` to run as, whether to give a terminal, extra descriptors."""

    uid: int | None = None
    gid: int | None = None
    use_pty: bool = False
    child_fds: Mapping[int, int] = dataclasses.field(default_factory=dict)


def check_child_fds(child_fds: Mapping[Any, Any]) -> dict[int, int]:
    """``{child_fd: our_fd}`` checked: ints, child fds from 3 (0-2 are stdio).

    Raises:
        ValueError: naming the entry at fault.
    """
    checked: dict[int, int] = {}
    for child_fd, our_fd in child_fds.items():
        for value in (child_fd, our_fd):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"child_fds: {child_fd!r}: {our_fd!r} must map a child descriptor number "
                    "to one of ours (Twisted's 'r'/'w' pipes are not supported: make the "
                    "pipe with os.pipe() and pass its end)"
                )
        if child_fd < FIRST_EXTRA_FD:
            raise ValueError(
                f"child_fds: child descriptor {child_fd} is stdin, stdout or stderr, which "
                "the endpoint wires itself; give 3 or more"
            )
        checked[child_fd] = our_fd
    return checked


def credential_error(uid: int | None, gid: int | None, euid: int, egid: int) -> str | None:
    """Why this process cannot start a child as ``uid``/``gid``, or ``None`` if it can."""
    if euid == 0:
        return None
    if uid is not None and uid != euid:
        return f"uid={uid} needs root: this process runs as uid {euid}"
    if gid is not None and gid != egid:
        return f"gid={gid} needs root: this process runs as gid {egid}"
    return None


def popen_user(uid: int | None, gid: int | None) -> dict[str, Any]:
    """``Popen`` keywords for running as ``uid``/``gid``, with that user's own groups.

    With only ``uid``, the group is the user's primary group (as ``su`` does), so the
    child never keeps ours; its supplementary groups are the user's (initgroups(3)),
    never root's.
    """
    if uid is None and gid is None:
        return {}
    keywords: dict[str, Any] = {}
    entry = _passwd(uid) if uid is not None else None
    if gid is None and entry is not None:
        gid = entry.pw_gid
    if uid is not None:
        keywords["user"] = uid
        if os.geteuid() == 0:  # only root may set them; never leave the child root's
            if entry is not None and gid is not None:
                keywords["extra_groups"] = os.getgrouplist(entry.pw_name, gid)
            else:
                keywords["extra_groups"] = [] if gid is None else [gid]
    if gid is not None:
        keywords["group"] = gid
    return keywords


def _passwd(uid: int) -> Any:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def child_preexec(setup: ChildSetup) -> Callable[[], None] | None:
    """What the child does between fork and exec: take its terminal, move descriptors.

    Runs in the forked child, so it only makes system calls.
    """
    child_fds = dict(setup.child_fds)
    if not setup.use_pty and not child_fds:
        return None
    above = max(child_fds, default=0) + 1

    def preexec() -> None:
        if setup.use_pty:
            # A new session, whose controlling terminal is the one on stdin
            # (tty_ioctl(4) TIOCSCTTY). Not Popen's start_new_session: gevent's
            # Popen calls setsid() only after this function.
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # Copy every source above every target first, so that {3: 4, 4: 3} works.
        moved = {
            child: fcntl.fcntl(ours, fcntl.F_DUPFD, above) for child, ours in child_fds.items()
        }
        for child, temporary in moved.items():
            os.dup2(temporary, child)  # dup2's copy is inheritable
            os.close(temporary)

    return preexec
