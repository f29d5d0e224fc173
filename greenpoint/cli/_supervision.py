"""What the ``greenpoint wsgi`` supervisor decides, as functions of values. Pure: no I/O.

The supervisor (:mod:`greenpoint.cli._supervisor`) keeps one :class:`WorkerState` per
worker process and asks these functions what to do next: how many workers to start,
which ones to stop because their successors are ready, which ones stopped sending
heartbeats, how long to wait before replacing a worker that keeps dying.

Generations make reloads and recycling one mechanism. A SIGHUP moves the supervisor
to a new generation: the old workers stop counting as active, so new ones are
started, and once ``target`` active workers are all ready the others are told to
stop (and drain). A worker that asks to be recycled (``--max-requests``) is no
longer active either: its successor starts at once and it drains once that
successor is ready. At no moment are fewer than ``target`` workers accepting
(except when one dies), so a reload never refuses a client.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
from collections.abc import Iterable

__all__ = [
    "WorkerState",
    "describe_exit",
    "is_active",
    "old_still_accepting",
    "recycle_limit",
    "restart_delay",
    "timed_out",
    "to_retire",
    "to_start",
]

# A worker that dies sooner than this after it started "died at once": the delay
# before its replacement grows with each such death in a row (a crash loop must not
# become a fork loop), from RESTART_DELAY doubling up to MAX_RESTART_DELAY.
QUICK_DEATH = 5.0
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0


@dataclasses.dataclass
class WorkerState:
    """The supervisor's view of one worker process."""

    pid: int
    generation: int
    started: float
    last_beat: float
    ready: bool = False
    retiring: bool = False  # told to stop: it drains and exits, it no longer counts
    recycle: bool = False  # asked for a successor (--max-requests); still serving
    aborted: bool = False  # timed out: SIGABRT sent, SIGKILL follows
    closed: bool = False  # stopped accepting (its copies of the listeners are closed)
    kill_at: float | None = None  # when SIGKILL is due if it is still alive
    boot_error: str | None = None  # what it reported when the application failed to load


def is_active(worker: WorkerState, generation: int) -> bool:
    """Whether ``worker`` is one of the ``target`` workers the supervisor keeps."""
    return worker.generation == generation and not worker.retiring and not worker.recycle


def to_start(workers: Iterable[WorkerState], generation: int, target: int) -> int:
    """How many workers to start so that ``target`` of ``generation`` are active."""
    return max(0, target - sum(is_active(w, generation) for w in workers))


def to_retire(workers: Iterable[WorkerState], generation: int, target: int) -> list[WorkerState]:
    """The workers to stop now: none until ``target`` active workers are all ready,
    then every other worker not stopping yet (the previous generation, recycled ones).
    """
    workers = list(workers)
    active = [w for w in workers if is_active(w, generation)]
    if len(active) < target or not all(w.ready for w in active):
        return []
    return [w for w in workers if not w.retiring and not is_active(w, generation)]


def old_still_accepting(workers: Iterable[WorkerState], generation: int) -> list[WorkerState]:
    """Workers that are no longer active but may still accept a connection.

    A reload is complete (``READY=1``) only once this is empty: from then on every
    new connection reaches the new code.
    """
    return [w for w in workers if not is_active(w, generation) and not w.closed and not w.aborted]


def timed_out(workers: Iterable[WorkerState], now: float, timeout: float) -> list[WorkerState]:
    """The workers whose last heartbeat is more than ``timeout`` seconds old (0: never)."""
    if not timeout:
        return []
    return [w for w in workers if not w.aborted and now - w.last_beat > timeout]


def restart_delay(quick_deaths: int) -> float:
    """How long to wait before replacing a worker after ``quick_deaths`` in a row."""
    if quick_deaths <= 0:
        return 0.0
    return float(min(MAX_RESTART_DELAY, RESTART_DELAY * 2.0 ** (quick_deaths - 1)))


def recycle_limit(max_requests: int, jitter: int, rng: random.Random | None = None) -> int | None:
    """The request count after which a worker asks to be recycled; ``None``: never.

    ``max_requests`` plus a random 0..``jitter``, as gunicorn's
    ``--max-requests-jitter`` does, so that workers started together do not all
    recycle together.
    """
    if max_requests <= 0:
        return None
    return max_requests + (rng or random).randint(0, max(0, jitter))


def describe_exit(status: int) -> str:
    """``waitpid``'s status in words: "exited with status 3", "was killed by SIGKILL"."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
