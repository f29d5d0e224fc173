"""Where greenpoint's own code reads and waits for time: one seam, one real clock.

A :class:`Clock` has ``now()`` (monotonic seconds) and ``sleep(seconds)`` (blocks the
calling greenlet). Code that waits or measures takes one as ``clock=`` (the
Happy Eyeballs racer, back-off in ``ReconnectingClient``/``ReconnectingStream``,
certificate reload intervals, the serve loop's accept back-off, the CLI's pump
timings), :data:`MONOTONIC` by default, so a test can pass
:class:`greenpoint.testing.FakeClock` and run on virtual time.

Hot paths that only compute deadlines (a TLS stream's reads and writes) call
:func:`monotonic`, :func:`deadline_after` and :func:`time_left` instead: the real clock,
with no object in between.

Not to be confused with ``greenpoint.clock`` (:mod:`greenpoint._reactor_time`):
that is Twisted's ``IReactorTime`` (``callLater``, ``seconds``) for ported protocol
code, which schedules callbacks on the gevent hub's timers. Both read
``time.monotonic()``; this one is for greenpoint's blocking-style code and its tests.
"""

from __future__ import annotations

import time
from typing import Protocol

import gevent

__all__ = [
    "MONOTONIC",
    "Clock",
    "MonotonicClock",
    "check_clock",
    "deadline_after",
    "monotonic",
    "time_left",
]

monotonic = time.monotonic


class Clock(Protocol):
    """What code that waits or measures time is given (``clock=``)."""

    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling greenlet for ``seconds``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``gevent.sleep``."""

    now = staticmethod(time.monotonic)
    sleep = staticmethod(gevent.sleep)


MONOTONIC = MonotonicClock()


def check_clock(clock: object, name: str = "clock") -> None:
    """Refuse what is not a :class:`Clock`, where it is given rather than where it is used.

    A bare ``time.monotonic``-style function, what some seams once took, is the
    likely mistake: the message says what to pass instead.
    """
    if not callable(getattr(clock, "now", None)):
        raise TypeError(
            f"{name} must be a clock with now() and sleep() (greenpoint.testing.FakeClock "
            f"in tests), not {clock!r}"
        )


def deadline_after(timeout: float | None) -> float | None:
    """The :func:`monotonic` time ``timeout`` seconds from now (``None``: no deadline)."""
    return None if timeout is None else monotonic() + timeout


def time_left(when: float | None) -> float | None:
    """Seconds until the deadline ``when`` (negative once passed; ``None``: no deadline)."""
    return None if when is None else when - monotonic()
