"""The ``greenpoint wsgi`` supervisor: forks workers, watches them, handles the signals.

The listeners are bound before the supervisor starts and stay open in it until it
stops, so a worker coming or going (a reload, a recycle, a crash) never closes a
listening socket: connections wait in the kernel's queue for the next worker to
accept them, none is refused or reset.

Signals (gunicorn's and nginx's meanings):

* SIGTERM: graceful stop. ``STOPPING=1``; the listeners close; every worker gets
  SIGTERM, finishes its requests for up to ``graceful_timeout`` and exits; exit 0.
  Sent to the whole process group it means the same: a worker ignores a second
  stop signal, so the group's SIGTERM and the one passed on count once.
* SIGINT, SIGQUIT: fast stop. Workers get SIGQUIT and close every connection now.
* SIGHUP: graceful reload. ``RELOADING=1``; TLS certificates are re-read; a new
  generation of workers is forked (each imports the application afresh); once all
  of them accept, the old ones drain and exit; ``READY=1``. A new generation that
  cannot load the application is given up after a few tries and the old workers
  keep serving.

The supervisor does not use gevent: it is a ``selectors`` loop over the workers'
status pipes and a signal wake-up pipe, and ``waitpid(WNOHANG)`` (so no SIGCHLD
handler competes with gevent's in the workers). Its decisions are the pure
functions of :mod:`greenpoint.cli._supervision`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable
from typing import Any

from greenpoint.cli import _sd_notify
from greenpoint.cli._supervision import (
    QUICK_DEATH,
    WorkerState,
    describe_exit,
    is_active,
    old_still_accepting,
    restart_delay,
    timed_out,
    to_retire,
    to_start,
)
from greenpoint.cli._worker_process import (
    BOOT_ERROR,
    WorkerPipes,
    WorkerSettings,
    listener_layers,
    run_worker,
)

__all__ = ["ApplicationLoadError", "Supervisor"]

log = logging.getLogger("greenpoint.wsgi")

# Beyond the graceful timeout, how long a stopping worker may take before SIGKILL.
KILL_MARGIN = 5.0
# After SIGABRT (heartbeat timeout), how long before SIGKILL.
ABORT_GRACE = 2.0
# Failures to load the application, in a row, after which the supervisor gives up
# (or a reload is abandoned and the old workers keep serving).
MAX_BOOT_FAILURES = 3
# The longest the loop sleeps: also how late a worker's death is noticed when its
# status pipe does not close with it (a child process of the app holds it).
TICK = 0.5
# How often to look for the exit status of a worker whose status pipe has closed.
REAP_POLL = 0.02

_SIGNAL_NAMES: dict[int, str] = {
    signal.SIGTERM: "SIGTERM",
    signal.SIGINT: "SIGINT",
    signal.SIGQUIT: "SIGQUIT",
    signal.SIGHUP: "SIGHUP",
}


class ApplicationLoadError(Exception):
    """The workers could not load the application, try after try; the message says why."""


class Supervisor:
    """Runs the workers of one ``greenpoint wsgi`` until a stop signal."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[..., bool] = _sd_notify.notify,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.notify = notify
        self.target = settings.workers
        self.generation = 0
        self.workers: dict[int, WorkerState] = {}
        self.status_fds: dict[int, int] = {}  # pid -> read end of its status pipe
        self.buffers: dict[int, bytes] = {}
        self.signals: list[int] = []
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.serving = False  # the first generation was ready once
        self.reloading = False
        self.reload_again = False
        self.quick_deaths = 0
        self.boot_failures = 0
        self.spawn_not_before = 0.0
        self.fatal: str | None = None
        self.failed = False
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe()
        self.lifeline_r, self.lifeline_w = os.pipe()
        self.previous_handlers: dict[int, Any] = {}
        self.previous_wakeup = -1
        self.watchdog = _sd_notify.watchdog_interval(os.environ, os.getpid())
        self.next_watchdog = clock()

    # -- the loop ----------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; return the exit status (0: every worker stopped well).

        Raises:
            ApplicationLoadError: no worker could load the application.
        """
        self._install_signals()
        try:
            while not (self.stopping and not self.workers):
                self._step()
        finally:
            self._restore_signals()
            self._close()
        if self.fatal is not None:
            raise ApplicationLoadError(self.fatal)
        return 1 if self.failed else 0

    def _step(self) -> None:
        self._take_signals()
        self._reap()
        now = self.clock()
        self._check_heartbeats(now)
        self._check_kill_deadlines(now)
        if not self.stopping:
            self._reconcile(now)
        if self.watchdog is not None and now >= self.next_watchdog:
            self.notify("WATCHDOG=1")  # the supervisor's loop runs; workers have heartbeats
            self.next_watchdog = now + self.watchdog
        if self.stopping and not self.workers:
            return
        for key, _ in self.selector.select(self._wait_time(now)):
            key.data()

    def _wait_time(self, now: float) -> float:
        deadlines = [now + TICK]
        if self.settings.timeout:
            deadlines += [w.last_beat + self.settings.timeout for w in self.workers.values()]
        deadlines += [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        if self.spawn_not_before > now:
            deadlines.append(self.spawn_not_before)
        if self.watchdog is not None:
            deadlines.append(self.next_watchdog)
        if any(pid not in self.status_fds for pid in self.workers):
            # Its status pipe closed as it exited: reap it as soon as it is a zombie.
            deadlines.append(now + REAP_POLL)
        return max(0.0, min(deadlines) - now)

    # -- signals -----------------------------------------------------------------

    def _install_signals(self) -> None:
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self._drain_wakeup)
        self.previous_wakeup = signal.set_wakeup_fd(self.wakeup_w)
        for signum in _SIGNAL_NAMES:
            self.previous_handlers[signum] = signal.signal(signum, self._on_signal)
        # Inherited SIG_IGN would make the kernel reap the workers itself, and
        # waitpid() would never tell us that one died.
        if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
            self.previous_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _restore_signals(self) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self.previous_wakeup)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)  # acted on in the loop, not in the handler

    def _drain_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wakeup_r, 512):
                pass

    def _take_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                self._begin_reload()
            else:
                self._begin_stop(fast=signum != signal.SIGTERM, why=_SIGNAL_NAMES[signum])

    # -- workers -----------------------------------------------------------------

    def _spawn(self, now: float) -> None:
        status_r, status_w = os.pipe()
        supervisor_fds = [
            self.wakeup_r,
            self.wakeup_w,
            self.lifeline_w,
            status_r,
            *self.status_fds.values(),
        ]
        selector_fileno = getattr(self.selector, "fileno", None)  # epoll's own fd
        if selector_fileno is not None:
            supervisor_fds.append(selector_fileno())
        supervisor_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            run_worker(
                self.settings,
                WorkerPipes(status_w, self.lifeline_r, supervisor_pid, supervisor_fds),
            )
        os.close(status_w)
        os.set_blocking(status_r, False)
        self.status_fds[pid] = status_r
        self.buffers[pid] = b""
        self.selector.register(status_r, selectors.EVENT_READ, lambda: self._read_status(pid))
        self.workers[pid] = WorkerState(pid, self.generation, now, now)
        log.debug("started worker %d (generation %d)", pid, self.generation)

    def _read_status(self, pid: int) -> bool:
        """Act on what worker ``pid`` sent; False if nothing was there to read."""
        fd = self.status_fds.get(pid)
        if fd is None:
            return False
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._close_status(pid)
            return False
        lines = (self.buffers[pid] + data).split(b"\n")
        self.buffers[pid] = lines.pop()
        worker = self.workers[pid]
        worker.last_beat = self.clock()
        for line in lines:
            self._on_message(worker, line)
        return True

    def _on_message(self, worker: WorkerState, line: bytes) -> None:
        kind, _, text = line.partition(b" ")
        if kind == b"R":
            worker.ready = True
            self.boot_failures = 0
        elif kind == b"X" and not worker.recycle and not worker.retiring:
            log.info("worker %d served its --max-requests; replacing it", worker.pid)
            worker.recycle = True
        elif kind == b"S":
            worker.closed = True
        elif kind == b"E":
            worker.boot_error = text.decode(errors="replace")

    def _close_status(self, pid: int) -> None:
        fd = self.status_fds.pop(pid, None)
        self.buffers.pop(pid, None)
        if fd is not None:
            self.selector.unregister(fd)
            os.close(fd)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.workers:
                continue
            while self._read_status(pid):  # what it said last (a boot error) may be unread
                pass
            self._close_status(pid)  # also when a child of the app still holds the pipe
            self._worker_exited(self.workers.pop(pid), status)

    def _worker_exited(self, worker: WorkerState, status: int) -> None:
        now = self.clock()
        if self.stopping or worker.retiring:
            if status != 0 and not worker.aborted and self.fatal is None:
                self.failed = self.failed or bool(self.stopping)
                log.error("worker %d %s while stopping", worker.pid, describe_exit(status))
            else:
                log.debug("worker %d %s", worker.pid, describe_exit(status))
            return
        self.quick_deaths = self.quick_deaths + 1 if now - worker.started < QUICK_DEATH else 0
        self.spawn_not_before = now + restart_delay(self.quick_deaths)
        if not worker.ready:
            self._boot_failed(worker, status)
            return
        log.warning("worker %d %s; starting another", worker.pid, describe_exit(status))

    def _boot_failed(self, worker: WorkerState, status: int) -> None:
        error = worker.boot_error
        if error is None or os.waitstatus_to_exitcode(status) != BOOT_ERROR:
            error = f"worker {worker.pid} {describe_exit(status)} before it was ready"
        self.boot_failures += 1
        serving = [w for w in self.workers.values() if w.ready and not w.retiring]
        level = logging.WARNING if serving else logging.DEBUG  # else: one line at the end
        log.log(level, "worker %d could not start: %s", worker.pid, error)
        if self.boot_failures < MAX_BOOT_FAILURES:
            return
        if self.reloading and serving:
            self._abandon_reload(error)
        elif not serving:
            self.fatal = error
            self._begin_stop(fast=True, why=None)

    def _check_heartbeats(self, now: float) -> None:
        for worker in timed_out(self.workers.values(), now, self.settings.timeout):
            # Its beats may be waiting in the pipe, unread (the supervisor itself was
            # stopped or starved): read them before judging.
            self._read_status(worker.pid)
            if now - worker.last_beat <= self.settings.timeout:
                continue
            log.error(
                "worker %d timed out (no heartbeat for %g s): killing it",
                worker.pid,
                self.settings.timeout,
            )
            worker.aborted = worker.retiring = True
            worker.kill_at = now + ABORT_GRACE
            _send_signal(worker.pid, signal.SIGABRT)  # its traceback, then it dies

    def _check_kill_deadlines(self, now: float) -> None:
        for worker in self.workers.values():
            if worker.kill_at is not None and now >= worker.kill_at:
                log.error("worker %d did not stop in time: SIGKILL", worker.pid)
                if self.stopping and not worker.aborted:
                    self.failed = True
                worker.kill_at = None
                worker.aborted = True
                _send_signal(worker.pid, signal.SIGKILL)

    def _retire(self, worker: WorkerState, signum: int, grace: float) -> None:
        deadline = self.clock() + grace + KILL_MARGIN
        worker.retiring = True
        if worker.kill_at is None or deadline < worker.kill_at:
            worker.kill_at = deadline
        _send_signal(worker.pid, signum)

    def _reconcile(self, now: float) -> None:
        workers = self.workers.values()
        if now >= self.spawn_not_before:
            for _ in range(to_start(workers, self.generation, self.target)):
                self._spawn(now)
        retiring = to_retire(self.workers.values(), self.generation, self.target)
        active = [w for w in self.workers.values() if is_active(w, self.generation)]
        all_ready = len(active) == self.target and all(w.ready for w in active)
        for worker in retiring:
            self._retire(worker, signal.SIGTERM, self.settings.graceful_timeout)
        if not all_ready:
            return
        if not self.serving:
            self.serving = True
            self._announce(active)
            if self.reload_again:  # a SIGHUP came while the first workers started
                self.reload_again = False
                self._begin_reload()
        elif self.reloading and not old_still_accepting(self.workers.values(), self.generation):
            self.reloading = False
            pids = " ".join(str(w.pid) for w in active)
            log.info("reloaded: %s: %s", _count(len(active), "new worker"), pids)
            self.notify("READY=1", f"STATUS=serving with {_count(len(active), 'worker')}")
            if self.reload_again:
                self.reload_again = False
                self._begin_reload()

    def _announce(self, active: list[WorkerState]) -> None:
        from greenpoint._address import listener_address

        for listener in self.settings.listeners:
            log.info("serving %s on %s", self.settings.app, listener_address(listener))
        pids = " ".join(str(w.pid) for w in active)
        log.info("started %s: %s", _count(len(active), "worker"), pids)
        self.notify("READY=1", f"STATUS=serving with {_count(len(active), 'worker')}")

    # -- reload and stop ---------------------------------------------------------

    def _begin_reload(self) -> None:
        if self.stopping:
            return
        if self.reloading or not self.serving:
            self.reload_again = True  # after the one in progress
            return
        self.notify(*_sd_notify.reloading_fields(), "STATUS=reloading")
        log.info("SIGHUP: reloading: starting %s", _count(self.target, "new worker"))
        self._reload_tls()
        self.reloading = True
        self.boot_failures = 0
        self.generation += 1

    def _reload_tls(self) -> None:
        for listener in self.settings.listeners:
            for layer in listener_layers(listener):
                reload = getattr(getattr(layer, "options", None), "reload", None)
                if reload is None:
                    continue
                try:
                    reload()
                except Exception as exc:
                    log.warning("keeping the previous TLS certificates: %s", exc)

    def _abandon_reload(self, error: str) -> None:
        log.error("reload failed: %s; the previous workers keep serving", error)
        new = [w for w in self.workers.values() if w.generation == self.generation]
        for worker in new:
            if not worker.retiring:
                self._retire(worker, signal.SIGTERM, self.settings.graceful_timeout)
        self.generation += 1
        for worker in self.workers.values():
            if not worker.retiring:  # the previous generation is the current one again
                worker.generation = self.generation
        self.reloading = False
        self.boot_failures = 0
        self.notify("READY=1", "STATUS=reload failed; the previous workers keep serving")

    def _begin_stop(self, *, fast: bool, why: str | None) -> None:
        if self.stopping == "fast" or (self.stopping and not fast):
            return  # a stop signal that comes again changes nothing
        first = self.stopping is None
        self.stopping = "fast" if fast else "graceful"
        if why is not None:
            log.info("%s: stopping %s", why, _count(len(self.workers), "worker"))
        if first:
            self.notify("STOPPING=1")
            for listener in self.settings.listeners:
                # New clients are refused once the workers have closed their copies.
                with contextlib.suppress(OSError):
                    listener.close()
        grace = 0.0 if fast else self.settings.graceful_timeout
        for worker in self.workers.values():
            if fast or not worker.retiring:  # a draining worker needs no second SIGTERM
                self._retire(worker, signal.SIGQUIT if fast else signal.SIGTERM, grace)

    def _close(self) -> None:
        for pid in list(self.status_fds):
            self._close_status(pid)
        self.selector.close()
        for fd in (self.wakeup_r, self.wakeup_w, self.lifeline_r, self.lifeline_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
