"""A value built from files, rebuilt when the files change, checked at most every N s.

Used for server certificates: each new connection asks for the current context,
and only when ``interval`` seconds have passed since the last look are the files'
``stat`` results compared with the ones the value was built from. A connection
never causes more than that (no re-reading on an unknown SNI name).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from greenpoint._clock import MONOTONIC, Clock

__all__ = ["ReloadingValue", "file_fingerprint", "tree_fingerprint"]

log = logging.getLogger("greenpoint.tls")

Fingerprint = tuple[Any, ...]


def _stat_key(path: str) -> Any:
    try:
        st = os.stat(path)
    except OSError as exc:
        return (path, "missing", exc.errno)
    return (path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def file_fingerprint(paths: Iterable[str]) -> Fingerprint:
    """What changes when any of ``paths`` is written, replaced, created or removed."""
    return tuple(_stat_key(path) for path in paths)


def tree_fingerprint(directory: str, suffix: str = ".pem") -> Fingerprint:
    """The fingerprint of every ``*suffix`` file under ``directory`` (recursively)."""
    found = [_stat_key(directory)]
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(suffix):
                found.append(_stat_key(os.path.join(root, name)))
    return tuple(found)


class ReloadingValue:
    """``get()`` returns the value, rebuilt if its files changed (checked rate-limited).

    A failed rebuild keeps the previous value and logs a warning; it is tried again
    only when the files change again. The first build's errors propagate.
    """

    def __init__(
        self,
        build: Callable[[], Any],
        fingerprint: Callable[[], Fingerprint],
        *,
        interval: float | None,
        clock: Clock = MONOTONIC,
        what: str = "TLS certificates",
    ) -> None:
        self._build = build
        self._fingerprint = fingerprint
        self._interval = interval
        self._now = clock.now
        self._what = what
        self._value: Any = None
        self._built = False
        self._print: Fingerprint | None = None
        self._checked = 0.0

    def get(self) -> Any:
        if not self._built:
            self.reload()
        elif self._interval is not None and self._now() - self._checked >= self._interval:
            self._check()
        return self._value

    def reload(self) -> Any:
        """Rebuild now, whatever the files say; errors propagate."""
        checked = self._now()
        fingerprint = self._fingerprint()
        self._value = self._build()
        self._built = True
        self._print = fingerprint
        self._checked = checked
        return self._value

    def _check(self) -> None:
        self._checked = self._now()
        fingerprint = self._fingerprint()
        if fingerprint == self._print:
            return
        self._print = fingerprint
        try:
            self._value = self._build()
        except Exception as exc:
            log.warning("keeping the previous %s: reloading failed: %s", self._what, exc)
        else:
            log.info("reloaded %s", self._what)
