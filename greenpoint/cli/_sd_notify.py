"""systemd's readiness protocol: one datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``.

sd_notify(3) is a datagram to the AF_UNIX socket named by ``NOTIFY_SOCKET``; a name
starting with ``@`` is in the abstract namespace (the ``@`` stands for a NUL byte).
Nothing here needs libsystemd: this is the whole protocol ``Type=notify`` units use.

Used by the ``greenpoint wsgi`` supervisor (the unit's main process, as the default
``NotifyAccess=main`` wants): ``READY=1`` once every worker accepts,
``RELOADING=1`` + ``MONOTONIC_USEC=`` (systemd 253's ``Type=notify-reload`` asks for
both) while a SIGHUP reload runs, ``STOPPING=1`` when a stop begins, and
``WATCHDOG=1`` every half ``WatchdogSec=`` when the unit sets one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["notify", "notify_address", "reloading_fields", "watchdog_interval"]

log = logging.getLogger("greenpoint.wsgi")


def notify_address(value: str | None) -> str | bytes | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value; ``None`` if none applies.

    ``/run/systemd/notify`` is a path, ``@name`` an abstract name. Other forms
    (systemd 254's ``vsock:``) are not ours to speak and give ``None``.
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def reloading_fields(monotonic_usec: int | None = None) -> tuple[str, str]:
    """``RELOADING=1`` and the ``MONOTONIC_USEC=`` systemd >= 253 requires with it."""
    if monotonic_usec is None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return ("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or ``None`` if systemd asks for none.

    ``WATCHDOG_USEC`` is the unit's ``WatchdogSec=``; sd_watchdog_enabled(3) says to
    ignore it when ``WATCHDOG_PID`` names another process, and to ping at half the
    interval.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID", "").strip()
    if usec <= 0 or (owner and owner != str(pid)):
        return None
    return usec / 1_000_000 / 2


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) to systemd, if it listens.

    Returns whether a datagram was sent. Without ``NOTIFY_SOCKET`` (not run by
    systemd as ``Type=notify``) this does nothing; a failed send is logged, never
    raised: readiness reports must not stop a server.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("NOTIFY_SOCKET")
    address = notify_address(raw)
    if address is None:
        if raw:
            log.debug("NOTIFY_SOCKET=%r is not a UNIX socket address; not notifying", raw)
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", raw, exc.strerror or exc)
        return False
    return True
