"""One ``greenpoint wsgi`` worker: a forked process that imports the application and serves.

The supervisor (:mod:`greenpoint.cli._supervisor`) forks before anything of the
application is imported, so every worker, and every worker after a SIGHUP, imports
it afresh. A worker talks to the supervisor through two pipes:

* its *status pipe* (worker -> supervisor), one short line per message:
  ``B`` heartbeat, ``R`` ready (every listener accepts), ``X`` recycle me
  (``--max-requests`` reached), ``S`` stopped accepting (draining now), ``E text``
  the application could not be loaded;
* the *lifeline* (supervisor -> every worker; nobody writes to it): its end of file
  means the supervisor is gone, and the worker stops at once. On Linux
  ``PR_SET_PDEATHSIG`` kills the worker even sooner; the lifeline is the fallback
  elsewhere and covers the fork-to-prctl race.

Signals, as gunicorn's workers take them: SIGTERM stops gracefully (listeners close,
requests in flight finish for up to the graceful timeout); SIGINT and SIGQUIT stop
at once (a graceful stop in progress is cut short). A stop signal that comes again
changes nothing, which is what makes a signal sent to the whole process group
(systemd's ``KillMode=control-group``, Ctrl-C, ``timeout``) safe while the
supervisor passes the same signal on. SIGHUP is the supervisor's and is ignored here.
SIGABRT (the supervisor's heartbeat timeout) prints every thread's traceback through
:mod:`faulthandler`, so the log shows where the hub was blocked.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import gevent
import gevent.event
import gevent.os

from greenpoint.cli._supervision import recycle_limit

__all__ = ["BOOT_ERROR", "WorkerSettings", "listener_layers", "run_worker"]

log = logging.getLogger("greenpoint.wsgi")

# The worker's exit status when the application could not be loaded (gunicorn's
# WORKER_BOOT_ERROR is 3 too).
BOOT_ERROR = 3

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Status messages (see the module docstring).
BEAT, READY, RECYCLE, STOPPED_ACCEPTING, ERROR = b"B", b"R", b"X", b"S", b"E"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What every worker of one ``greenpoint wsgi`` needs to know."""

    app: str  # module:application, imported in each worker
    listeners: Sequence[Any]  # bound in the supervisor, shared by every worker
    workers: int = 1
    graceful_timeout: float = 30.0
    timeout: float = 30.0  # heartbeat timeout; 0: none
    max_requests: int = 0
    max_requests_jitter: int = 0
    access_log: bool = True
    monkey_patch: bool = False
    # More keywords for serve_listener() in each worker (WSGIServer's options).
    server_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class WorkerPipes:
    """The worker's ends of its pipes, and what it must close of the supervisor's."""

    status: int
    lifeline: int
    supervisor_pid: int
    supervisor_fds: Sequence[int]


def listener_layers(listener: Any) -> Iterator[Any]:
    """``listener`` and every listener it wraps (TLS over PROXY over TCP...)."""
    seen = 0
    while listener is not None and seen < 16:
        yield listener
        seen += 1
        listener = getattr(listener, "inner", None) or getattr(listener, "listener", None)


def heartbeat_interval(timeout: float) -> float:
    """How often a worker says it is alive: several beats per timeout, at most 1 s
    (and at least 50 ms apart, however short the timeout)."""
    return max(0.05, min(1.0, timeout / 4)) if timeout else 1.0


def run_worker(settings: WorkerSettings, pipes: WorkerPipes) -> NoReturn:
    """Become a worker (just after ``fork()``): serve until stopped, then ``_exit``."""
    status = 1
    try:
        _leave_supervisor(pipes)
        status = _Worker(settings, pipes).run()
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stderr.flush()
        os._exit(status)


def _leave_supervisor(pipes: WorkerPipes) -> None:
    # Until the worker's own handlers are in place, a stop signal must not kill it.
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    for fd in pipes.supervisor_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    gevent.reinit()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != pipes.supervisor_pid:  # it died before prctl took effect
        os._exit(0)


def set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` when the parent dies (prctl(2)); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class _Worker:
    def __init__(self, settings: WorkerSettings, pipes: WorkerPipes) -> None:
        self.settings = settings
        self.pipes = pipes
        self.mode: str | None = None  # None, "graceful" or "fast"
        self.stop_requested = gevent.event.Event()
        self.draining: list[Any] = []
        self.signal_handlers: list[Any] = []
        self.requests = 0

    def run(self) -> int:
        os.set_blocking(self.pipes.status, False)
        # Kept (referenced) until _exit: a stop signal that comes late, as the one the
        # supervisor passes on after the group's, must never meet the default action.
        self.signal_handlers = [
            gevent.signal_handler(signal.SIGTERM, self.request_stop, "graceful"),
            gevent.signal_handler(signal.SIGINT, self.request_stop, "fast"),
            gevent.signal_handler(signal.SIGQUIT, self.request_stop, "fast"),
        ]
        with contextlib.suppress(Exception):  # no usable stderr: no tracebacks, that is all
            faulthandler.enable()
        self.send(BEAT)
        application = self.load()
        if application is None:
            return BOOT_ERROR
        gevent.idle()  # the hub takes a stop signal that came during the import
        if self.stop_requested.is_set():
            return 0  # told to stop before serving: accept nothing
        ports = self.serve(application)
        gevent.spawn(self.beat, heartbeat_interval(self.settings.timeout))
        gevent.spawn(self.watch_lifeline)
        self.send(READY)
        self.stop_requested.wait()
        self.drain(ports)
        return 0

    def load(self) -> Callable[..., Any] | None:
        from greenpoint.wsgi import load_application

        spec = self.settings.app
        if self.settings.monkey_patch:
            from greenpoint.cli._worker_app import patch_for_application

            patch_for_application()
        try:
            return load_application(spec)
        except ValueError as exc:
            message = str(exc)
        except Exception as exc:  # the module raised while being imported
            log.debug("loading %s failed", spec, exc_info=True)
            module = spec.partition(":")[0]
            message = f"cannot import {module!r}: {type(exc).__name__}: {exc}"
        self.send(ERROR + b" " + message.encode(errors="replace").replace(b"\n", b" "))
        return None

    def serve(self, application: Callable[..., Any]) -> list[Any]:
        from greenpoint.wsgi import serve_listener

        settings = self.settings
        limit = recycle_limit(settings.max_requests, settings.max_requests_jitter)
        if limit is not None:
            application = self.counted(application, limit)
        options = {
            "log": "default" if settings.access_log else None,
            "environ": {"wsgi.multiprocess": settings.workers > 1},
            **settings.server_options,
        }
        for listener in settings.listeners:
            for layer in listener_layers(listener):
                # The supervisor owns socket files and locks: this copy closing
                # (a reload, a recycle) must not remove them.
                leave_file = getattr(layer, "leave_file_on_close", None)
                if leave_file is not None:
                    leave_file()
        ports = [
            serve_listener(listener, application, **options) for listener in settings.listeners
        ]
        for port in ports:
            # A reload or a recycle must not cut a busy keep-alive client's next request.
            port.wsgi_server.drain_keep_alive = True
            # The other workers accept on the same sockets: share bursts with them.
            port.shares_listener = settings.workers > 1
        return ports

    def counted(self, application: Callable[..., Any], limit: int) -> Callable[..., Any]:
        def counting_application(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Any:
            self.requests += 1
            if self.requests == limit:  # the supervisor starts a successor, then stops us
                self.send(RECYCLE)
            return application(environ, start_response)

        return counting_application

    def request_stop(self, mode: str) -> None:
        """A signal handler (runs in the hub): note the stop, never block."""
        if self.mode is None:
            self.mode = mode
            self.stop_requested.set()
        elif mode == "fast" and self.mode == "graceful":
            self.mode = "fast"
            for greenlet in self.draining:  # cut the drain short: handlers are aborted
                greenlet.kill(block=False)

    def drain(self, ports: list[Any]) -> None:
        timeout = 0.0 if self.mode == "fast" else self.settings.graceful_timeout
        self.draining = [gevent.spawn(port.stop_listening, timeout) for port in ports]
        gevent.sleep(0)  # each stop closes its listener before it waits for anything
        self.send(STOPPED_ACCEPTING)
        gevent.joinall(self.draining)

    def beat(self, interval: float) -> None:
        while True:
            self.send(BEAT)
            gevent.sleep(interval)

    def watch_lifeline(self) -> None:
        fd = self.pipes.lifeline
        gevent.os.make_nonblocking(fd)
        while True:
            try:
                if not gevent.os.nb_read(fd, 1):
                    break
            except OSError:
                break
        log.warning("worker %d: the supervisor is gone; stopping", os.getpid())
        self.request_stop("fast")

    def send(self, message: bytes) -> None:
        try:
            os.write(self.pipes.status, message + b"\n")
        except (BlockingIOError, BrokenPipeError):
            pass  # a full pipe loses a heartbeat; a closed one means the supervisor is gone
