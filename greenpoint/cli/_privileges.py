"""``greenpoint wsgi --user/--group``: bind as root, then serve as someone else.

The listening sockets are bound first (port 80, a socket in ``/run``), then the
process gives up root for good, in the only order that works: supplementary
groups (``initgroups`` for a named user, else just the new group), then the
group, then the user; after ``setuid`` nothing can be changed back. A UNIX
socket file bound as root is handed to the new owner first, so that the server
can still remove it when it stops (gunicorn does the same).

Unlike gunicorn, whose arbiter stays root and only its workers switch, the whole
``greenpoint wsgi`` process switches: nothing runs as root once serving starts.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Identity", "PrivilegeError", "chown_unix_sockets", "drop_privileges", "resolve"]


class PrivilegeError(Exception):
    """An unknown user or group, or a switch this process is not allowed to make."""


@dataclass(frozen=True)
class Identity:
    """Who to become: ``uid`` and ``gid``, and the user's name for its groups."""

    uid: int
    gid: int
    user_name: str | None = None

    def describe(self) -> str:
        return f"uid {self.uid} ({self.user_name or '?'}), gid {self.gid}"


def _user(text: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        raise PrivilegeError(f"--user {text}: no such user") from None


def _group_id(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise PrivilegeError(f"--group {text}: no such group") from None


def resolve(user: str | None, group: str | None) -> Identity | None:
    """The identity ``--user``/``--group`` name (numbers work too); ``None`` for neither.

    ``--user`` alone takes the user's primary group; ``--group`` alone keeps the
    current user.

    Raises:
        PrivilegeError: an unknown user or group name.
    """
    if user is None and group is None:
        return None
    if user is not None:
        entry = _user(user)
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    else:
        uid, gid, name = os.getuid(), os.getgid(), None
    if group is not None:
        gid = _group_id(group)
    return Identity(uid, gid, name)


def drop_privileges(identity: Identity) -> None:
    """Become ``identity`` for good: groups, then gid, then uid.

    Raises:
        PrivilegeError: this process is not root (and is not already ``identity``),
            or the kernel refused a step.
    """
    if (os.getuid(), os.getgid()) == (identity.uid, identity.gid):
        return  # nothing to change; no root needed
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"--user/--group: switching to {identity.describe()} needs root; "
            f"running as uid {os.geteuid()}"
        )
    try:
        if identity.user_name is not None:
            os.initgroups(identity.user_name, identity.gid)
        else:
            os.setgroups([identity.gid])
        os.setgid(identity.gid)
        os.setuid(identity.uid)
    except OSError as exc:
        raise PrivilegeError(
            f"--user/--group: cannot switch to {identity.describe()}: {exc.strerror}"
        ) from exc
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return  # as it should be: root is gone for good
        raise PrivilegeError("--user: root could be regained after switching; refusing to run")


def chown_unix_sockets(paths: Iterable[str], identity: Identity) -> None:
    """Give each UNIX socket file (and its ``.lock``) to ``identity`` before switching.

    Raises:
        PrivilegeError: a file could not be changed.
    """
    for path in paths:
        for name in (path, f"{path}.lock"):
            try:
                os.lchown(name, identity.uid, identity.gid)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PrivilegeError(f"--user: cannot chown {name}: {exc.strerror}") from exc
