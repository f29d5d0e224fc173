"""``greenpoint wsgi``'s processes, and waiting for a stop signal in ``greenpoint relay``.

``greenpoint wsgi`` always runs a supervisor and worker processes, as gunicorn does
(:mod:`greenpoint.cli._supervisor`, :mod:`greenpoint.cli._worker_process`): the listeners
are bound once, in the supervisor, and every worker accepts on the same kernel
sockets.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
import gevent.event

from greenpoint.cli._supervisor import ApplicationLoadError, Supervisor
from greenpoint.cli._worker_process import WorkerSettings

__all__ = ["ApplicationLoadError", "serve_wsgi", "wait_for_stop_signal"]

log = logging.getLogger("greenpoint.wsgi")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The installed handlers, referenced for the life of the process.
_handlers: list[Any] = []


def wait_for_stop_signal() -> int:
    """Block the calling greenlet until SIGTERM or SIGINT arrives; return its number.

    The handlers stay installed: a second stop signal during the drain that follows
    (one sent to the process group and again by a parent, an impatient Ctrl-C) is
    ignored, where the default action would kill the process mid-drain.
    """
    received = gevent.event.AsyncResult()
    for stop_signal in STOP_SIGNALS:
        _handlers.append(gevent.signal_handler(stop_signal, _note, received, stop_signal))
    signum: int = received.get()
    log.info("%s: stopping", signal.Signals(signum).name)
    return signum


def _note(received: gevent.event.AsyncResult, signum: int) -> None:
    if received.ready():
        log.info("%s: already stopping", signal.Signals(signum).name)
    else:
        received.set(signum)


def serve_wsgi(
    listeners: Sequence[Any],
    app: str,
    *,
    workers: int = 1,
    graceful_timeout: float = 30.0,
    timeout: float = 30.0,
    max_requests: int = 0,
    max_requests_jitter: int = 0,
    access_log: bool = True,
    monkey_patch: bool = False,
    server_options: Mapping[str, Any] | None = None,
) -> int:
    """Serve the application ``app`` (``module:name``) on ``listeners`` until stopped.

    Blocks; returns the exit status. Each of the ``workers`` processes imports
    ``app`` itself; ``server_options`` are more keywords for its
    :func:`greenpoint.wsgi.serve_listener` calls.

    Raises:
        ApplicationLoadError: no worker could load ``app``.
    """
    settings = WorkerSettings(
        app=app,
        listeners=listeners,
        workers=workers,
        graceful_timeout=graceful_timeout,
        timeout=timeout,
        max_requests=max_requests,
        max_requests_jitter=max_requests_jitter,
        access_log=access_log,
        monkey_patch=monkey_patch,
        server_options=dict(server_options or {}),
    )
    return Supervisor(settings).run()
