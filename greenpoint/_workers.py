"""``greenpoint wsgi --workers N``: serve in N forked processes sharing the listeners.

The listeners are bound once, before forking, so every worker accepts on the same
kernel sockets (as gunicorn and uWSGI pre-fork) and the kernel hands each new
connection to one of them. The parent only supervises: it restarts a worker that
dies, and on SIGTERM or SIGINT passes SIGTERM on and waits for every worker to
finish its requests.

A worker (or the single process, without ``--workers``) stops gracefully on
SIGTERM/SIGINT: its ports stop accepting, requests in progress finish for up to
``grace`` seconds, then it exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import gevent.event
import gevent.os
import gevent.queue

__all__ = ["serve_wsgi", "wait_for_stop_signal"]

log = logging.getLogger("greenpoint.wsgi")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# A worker that dies sooner than this after starting is restarted only after the
# same delay, so that a crashing application does not become a fork loop.
RESTART_DELAY = 1.0

# After the grace period, how long the parent waits for workers before SIGKILL.
KILL_MARGIN = 5.0


def wait_for_stop_signal() -> int:
    """Block the calling greenlet until SIGTERM or SIGINT arrives; return its number."""
    received = gevent.event.AsyncResult()
    handlers = [gevent.signal_handler(signum, received.set, signum) for signum in STOP_SIGNALS]
    try:
        signum = received.get()
    finally:
        for handler in handlers:
            handler.cancel()
    log.info("%s: stopping", signal.Signals(signum).name)
    return signum


def serve_wsgi(
    listeners: Sequence[Any],
    application: Callable[..., Any],
    *,
    workers: int = 1,
    grace: float = 30.0,
    access_log: bool = True,
    server_options: dict[str, Any] | None = None,
) -> int:
    """Serve ``application`` on every listener until a stop signal; return an exit code.

    ``server_options`` go to every worker's ``WSGIServer`` (``access_log_format``,
    ``forwarded_allow_ips``, ``log``...).
    """
    options = {
        "log": "default" if access_log else None,
        "environ": {"wsgi.multiprocess": workers > 1},
        **(server_options or {}),
    }
    if workers == 1:
        return _serve_until_signal(listeners, application, grace, options)
    return _Supervisor(listeners, application, workers, grace, options).run()


def _serve_until_signal(
    listeners: Sequence[Any], application: Callable[..., Any], grace: float, options: dict
) -> int:
    from greenpoint.wsgi import serve_listener

    ports = [serve_listener(listener, application, **options) for listener in listeners]
    try:
        wait_for_stop_signal()
    finally:
        stopping = [gevent.spawn(port.stop_listening, grace) for port in ports]
        gevent.joinall(stopping)
    return 0


class _Supervisor:
    """The parent of the workers; everything happens in the calling greenlet."""

    def __init__(
        self,
        listeners: Sequence[Any],
        application: Callable[..., Any],
        workers: int,
        grace: float,
        options: dict,
    ) -> None:
        self.listeners = listeners
        self.application = application
        self.workers = workers
        self.grace = grace
        self.options = options
        self.events: gevent.queue.Queue = gevent.queue.Queue()
        self.children: dict[int, float] = {}  # pid -> when it started
        self.watchers: list[Any] = []
        self.signal_handlers: list[Any] = []
        self.failed = False

    def run(self) -> int:
        self.signal_handlers = [
            gevent.signal_handler(signum, self.events.put, ("signal", signum, 0))
            for signum in STOP_SIGNALS
        ]
        try:
            for _ in range(self.workers):
                self._start_worker()
            log.info("started %d workers: %s", self.workers, " ".join(map(str, self.children)))
            self._supervise()
            self._stop()
        finally:
            for handler in self.signal_handlers:
                handler.cancel()
        return 1 if self.failed else 0

    def _start_worker(self) -> None:
        pid = gevent.fork()
        if pid == 0:  # the worker
            self._become_worker()
        self.children[pid] = time.monotonic()
        self.watchers.append(gevent.spawn(self._watch, pid))

    def _become_worker(self) -> None:
        # The parent's greenlets and signal handlers came along through fork();
        # they must not act here.
        for handler in self.signal_handlers:
            handler.cancel()
        for watcher in self.watchers:
            watcher.kill(block=False)
        status = 1
        try:
            status = _serve_until_signal(self.listeners, self.application, self.grace, self.options)
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            logging.shutdown()
            os._exit(status)

    def _watch(self, pid: int) -> None:
        _, status = gevent.os.waitpid(pid, 0)
        self.events.put(("exit", pid, status))

    def _supervise(self) -> None:
        while True:
            kind, who, status = self.events.get()
            if kind == "signal":
                log.info("%s: stopping %d workers", signal.Signals(who).name, len(self.children))
                return
            started = self.children.pop(who, None)
            log.warning("worker %d %s; starting another", who, _exit_text(status))
            if started is not None and time.monotonic() - started < RESTART_DELAY:
                gevent.sleep(RESTART_DELAY)
            self._start_worker()

    def _stop(self) -> None:
        for pid in self.children:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + KILL_MARGIN
        while self.children:
            try:
                kind, who, status = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except gevent.queue.Empty:
                for pid in self.children:
                    log.error("worker %d did not stop in time; killing it", pid)
                    _signal(pid, signal.SIGKILL)
                deadline = float("inf")
                continue
            if kind == "exit" and who in self.children:
                del self.children[who]
                if status != 0:
                    self.failed = True
                    log.error("worker %d %s", who, _exit_text(status))


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
