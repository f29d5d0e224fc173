"""Run a served port as a systemd service would have it (``greenpoint relay``).

* ``sd_notify``: ``READY=1`` once the port accepts, ``STOPPING=1`` when a stop begins
  (as the ``greenpoint wsgi`` supervisor does, see :mod:`greenpoint.cli._sd_notify`);
* the file-descriptor store (:mod:`greenpoint.cli._fd_store`): listening sockets are
  handed to systemd so that a restart gets them back instead of re-binding;
* the port ending by itself (systemd ``Accept=yes``: one connection, then exit)
  ends the wait as a stop signal does.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gevent

from greenpoint.cli._sd_notify import notify, watchdog_interval

__all__ = ["serve_until_stopped"]

log = logging.getLogger("greenpoint")


def serve_until_stopped(port: Any, grace: float | None, description: str) -> None:
    """Block until SIGTERM/SIGINT (then drain for ``grace`` seconds) or the port stops.

    ``description`` is the server description text the port was made from: its
    socket is stored under a name derived from it.
    """
    from greenpoint.cli._fd_store import store_listener
    from greenpoint.cli._workers import wait_for_stop_signal

    store_listener(port, description)
    notify("READY=1", f"STATUS=relaying on {port.get_host()}")
    waiter = gevent.spawn(wait_for_stop_signal)
    interval = watchdog_interval(os.environ, os.getpid())
    pinger = gevent.spawn(_ping_watchdog, interval) if interval else None
    try:
        # Whichever comes first: a stop signal, or the port stopping by itself
        # (its private "stopped" event: serve_forever() would stop it when killed).
        gevent.wait([waiter, port._stopped], count=1)
    finally:
        waiter.kill()
        notify("STOPPING=1")
        port.stop_listening(timeout=grace)
        if pinger is not None:
            pinger.kill()


def _ping_watchdog(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        gevent.sleep(interval)
