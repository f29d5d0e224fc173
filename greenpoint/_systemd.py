"""Which sockets systemd passed us: parse ``LISTEN_PID``/``LISTEN_FDS``/``LISTEN_FDNAMES``. Pure.

The protocol (sd_listen_fds(3)): the passed descriptors are consecutive, starting
at fd 3; ``LISTEN_FDS`` says how many; ``LISTEN_PID`` names the process they are
meant for (a child that inherited the environment must not take them);
``LISTEN_FDNAMES`` optionally names them, ``:``-separated, in order.

This module only reads a mapping it is given (``os.environ`` in real use) and a
PID; it never touches the environment or a descriptor, and nothing happens at
import. Differences from Twisted's ``ListenFDs``: a missing ``LISTEN_FDNAMES`` (as
``systemd-socket-activate`` without ``--fdname`` leaves it) is fine, and a name
count that does not match keeps the descriptors (missing names are ``None``, extra
names are dropped) instead of discarding every one of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["LISTEN_FDS_START", "ListenFDs", "listen_fds"]

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START in sd-daemon.h
# A sanity bound: a corrupt LISTEN_FDS must not make us build a huge tuple.
MAX_LISTEN_FDS = 65536


@dataclasses.dataclass(frozen=True)
class ListenFDs:
    """The descriptors passed to this process and their names.

    ``names[i]`` names ``fds[i]`` (``None`` when unnamed). ``note`` says, in a
    sentence for error messages, why there are none or what looked odd.
    ``activated`` is whether this process was socket-activated at all
    (``LISTEN_PID`` is this process), so that ``fallback=`` applies only when not.
    """

    fds: tuple[int, ...] = ()
    names: tuple[str | None, ...] = ()
    note: str = ""
    activated: bool = False

    def fd_at(self, index: int) -> int | None:
        """The descriptor at ``index`` (0 is fd 3), or ``None``."""
        if 0 <= index < len(self.fds):
            return self.fds[index]
        return None

    def fd_named(self, name: str) -> int | None:
        """The first descriptor called ``name``, or ``None``."""
        for fd, fd_name in zip(self.fds, self.names, strict=True):
            if fd_name == name:
                return fd
        return None

    def describe(self) -> str:
        """``"2 sockets were passed (fd 3 'web', fd 4 unnamed)"``, plus the note."""
        count = len(self.fds)
        if count == 0:
            text = "no sockets were passed"
        else:
            parts = [
                f"fd {fd} {name!r}" if name is not None else f"fd {fd} unnamed"
                for fd, name in zip(self.fds, self.names, strict=True)
            ]
            noun = "socket was" if count == 1 else "sockets were"
            text = f"{count} {noun} passed ({', '.join(parts)})"
        return f"{text}; {self.note}" if self.note else text


def _parse_count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), 10)
    except ValueError:
        return None


def listen_fds(environ: Mapping[str, str], pid: int) -> ListenFDs:
    """The sockets ``environ`` says were passed to process ``pid``.

    Never raises: anything unusable gives an empty :class:`ListenFDs` whose
    ``note`` says why.
    """
    listen_pid = environ.get("LISTEN_PID")
    count_text = environ.get("LISTEN_FDS")
    if listen_pid is None and count_text is None:
        return ListenFDs(note="LISTEN_FDS is not set (not started by systemd socket activation?)")
    if listen_pid is None:
        return ListenFDs(note="LISTEN_PID is not set, so LISTEN_FDS cannot be trusted")
    if _parse_count(listen_pid) != pid:
        return ListenFDs(
            note=f"LISTEN_PID={listen_pid} is not this process ({pid}): the sockets "
            "were meant for another process"
        )
    count = _parse_count(count_text)
    if count is None or count < 0 or count > MAX_LISTEN_FDS:
        return ListenFDs(note=f"LISTEN_FDS={count_text!r} is not a usable count", activated=True)
    fds = tuple(range(LISTEN_FDS_START, LISTEN_FDS_START + count))
    names, note = _names(environ.get("LISTEN_FDNAMES"), count)
    return ListenFDs(fds, names, note, activated=True)


def _names(text: str | None, count: int) -> tuple[tuple[str | None, ...], str]:
    if text is None:
        return (None,) * count, ""
    given = [name or None for name in text.split(":")] if count or text else []
    note = ""
    if len(given) != count:
        note = (
            f"LISTEN_FDNAMES has {len(given)} names for {count} sockets; "
            "names were matched to sockets in order"
        )
    given = given[:count] + [None] * (count - len(given))
    return tuple(given), note
