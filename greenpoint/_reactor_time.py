"""``greenpoint.clock``: Twisted's ``IReactorTime`` on gevent timers.

``clock.callLater(delay, f, *args, **kwargs)`` returns a :class:`DelayedCall` with
Twisted's methods (``cancel``, ``reset``, ``delay``, ``active``, ``getTime``);
``clock.seconds()`` and ``clock.getDelayedCalls()`` complete the interface. It is
what ported protocols use instead of ``reactor.callLater``.

Where a callback runs. A call made while a connection's protocol code runs
(``connectionMade``, ``dataReceived``, another timer of that connection, or through
``transport.callLater``) belongs to that connection: when it is due, the gevent
hub only marks it and wakes the connection's reader greenlet, which runs it
between two ``dataReceived`` calls. So a timer never runs while the same
connection's ``dataReceived`` runs, even when ``dataReceived`` blocks on I/O, and
no lock is needed: the two share one greenlet. Any other call (or one whose
connection has closed) runs in a greenlet of its own.

Time is ``time.monotonic()``, not the wall clock ``reactor.seconds()`` gives:
timers must not jump when the system clock is set.

Not the same seam as :mod:`greenpoint._clock`: that one (``now()``/``sleep()``,
faked in tests by ``greenpoint.testing.FakeClock``) is where greenpoint's own
blocking-style code reads and waits for time; this one schedules callbacks for
ported Twisted protocols (faked by ``greenpoint.testing.ManualClock``). Both read
the same monotonic time.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent

__all__ = ["AlreadyCalled", "AlreadyCancelled", "Clock", "DelayedCall", "clock"]

log = logging.getLogger("greenpoint")


class TimerOwner(Protocol):
    """What a connection offers its timers (the transport implements it)."""

    def run_timer(self, call: Callable[[], None]) -> bool:
        """Run ``call`` in the connection's greenlet soon; ``False`` if it cannot."""


# The connection whose protocol code is running in this greenlet (each gevent
# greenlet has its own context, so the reader's value stays with the reader).
current_owner: contextvars.ContextVar[TimerOwner | None] = contextvars.ContextVar(
    "greenpoint_timer_owner", default=None
)


class AlreadyCalled(ValueError):
    """``cancel``/``reset``/``delay`` on a call that has already run."""


class AlreadyCancelled(ValueError):
    """``cancel``/``reset``/``delay`` on a call that was cancelled."""


def _error(ours: type[ValueError], twisted_name: str, message: str) -> ValueError:
    """``ours``, and also Twisted's class of that name when Twisted is loaded.

    ``TimeoutMixin.setTimeout`` catches ``twisted.internet.error.AlreadyCalled``;
    raising an instance of both lets such code work unchanged, without importing
    Twisted here.
    """
    twisted_errors = sys.modules.get("twisted.internet.error")
    theirs = getattr(twisted_errors, twisted_name, None)
    if theirs is None:
        return ours(message)
    both = _BOTH.get(twisted_name)
    if both is None:
        both = _BOTH[twisted_name] = type(twisted_name, (ours, theirs), {})
    return both(message)


_BOTH: dict[str, type[ValueError]] = {}

# A timer may fire this much before its time (the loop's clock is cached per
# iteration); closer than this, the call is due.
_EARLY = 0.001


class DelayedCall:
    """One scheduled call, as ``callLater`` returns it (Twisted's ``IDelayedCall``)."""

    def __init__(
        self,
        clock: Clock,
        when: float,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        owner: TimerOwner | None,
    ) -> None:
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False
        self.time = when
        self._clock = clock
        self._owner = owner
        self._timer: Any = None
        self._generation = itertools.count()
        self._armed = 0  # which arming of the timer may still run the call
        self._arm()

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "active"
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<DelayedCall {name} at {self.time:.3f} {state}>"

    def getTime(self) -> float:  # noqa: N802 - Twisted's name
        """When the call is due, in :meth:`Clock.seconds` time."""
        return self.time

    def active(self) -> bool:
        """``True`` until the call has run or was cancelled."""
        return not (self.called or self.cancelled)

    def cancel(self) -> None:
        """Never run the call.

        Raises:
            AlreadyCalled, AlreadyCancelled: as Twisted's ``DelayedCall`` does.
        """
        self._check_active()
        self.cancelled = True
        self._disarm()
        self._clock._pending.discard(self)

    def reset(self, seconds_from_now: float) -> None:
        """Run the call ``seconds_from_now`` seconds from now instead."""
        self._check_active()
        self._move_to(self._clock.seconds() + max(0.0, seconds_from_now))

    def delay(self, seconds_later: float) -> None:
        """Run the call ``seconds_later`` seconds later than planned."""
        self._check_active()
        self._move_to(self.time + seconds_later)

    def _move_to(self, when: float) -> None:
        # Later than the armed timer (TimeoutMixin.resetTimeout on every line): keep
        # the timer; when it fires it sees the new time and arms again. Only moving
        # earlier needs a new timer now.
        if self._timer is not None and when >= self._armed_for:
            self.time = when
            return
        self._disarm()
        self.time = when
        self._arm()

    def _check_active(self) -> None:
        if self.called:
            raise _error(AlreadyCalled, "AlreadyCalled", f"{self!r} has already run")
        if self.cancelled:
            raise _error(AlreadyCancelled, "AlreadyCancelled", f"{self!r} was cancelled")

    def _arm(self) -> None:
        self._armed = next(self._generation)
        self._armed_for = self.time
        self._timer = self._clock._start_timer(self, self._armed)

    def _disarm(self) -> None:
        self._armed = -1  # a run already queued for the old arming does nothing
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _due(self, armed: int) -> None:
        # In the hub: nothing here may block. Hand the call to its connection's
        # greenlet, or to a greenlet of its own.
        self._timer = None
        if armed != self._armed:
            return
        if self.time - self._clock.seconds() > _EARLY:
            self._arm()  # moved later by reset()/delay() since it was armed
            return
        self._clock._dispatch(self, armed)

    def _run(self, armed: int) -> None:
        if armed != self._armed or not self.active():
            return  # reset or cancelled after it fell due, before it ran
        self.called = True
        self._clock._pending.discard(self)
        try:
            self.func(*self.args, **self.kw)
        except Exception:
            log.exception("Unhandled error in delayed call %r", self)


class Clock:
    """Twisted's ``IReactorTime`` on the gevent hub's timers (``greenpoint.clock``)."""

    def __init__(self) -> None:
        self._pending: set[DelayedCall] = set()

    def __repr__(self) -> str:
        return f"<greenpoint.clock, {len(self._pending)} calls pending>"

    def seconds(self) -> float:
        """The current time in seconds (monotonic: it never jumps)."""
        return time.monotonic()

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, func: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        """Call ``func(*args, **kw)`` in ``delay`` seconds; returns the call's handle.

        Made from a connection's protocol code, the call runs in that connection's
        greenlet, never during its ``dataReceived`` (see the module docstring).
        """
        return self.call_later_for(current_owner.get(), delay, func, *args, **kw)

    def call_later_for(
        self,
        owner: TimerOwner | None,
        delay: float,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> DelayedCall:
        """:meth:`callLater` for the connection ``owner`` (``None``: its own greenlet)."""
        if not callable(func):
            raise TypeError(f"callLater needs a callable, not {type(func).__name__}")
        if delay != delay or delay < 0:  # NaN, or negative: Twisted asserts it
            raise ValueError(f"callLater delay must be a number >= 0, not {delay!r}")
        call = DelayedCall(self, self.seconds() + delay, func, args, kw, owner)
        self._pending.add(call)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:  # noqa: N802 - Twisted's name
        """The calls scheduled and not yet run or cancelled."""
        return [call for call in self._pending if call.active()]

    def _dispatch(self, call: DelayedCall, armed: int) -> None:
        """Run a call that fell due: in its connection's greenlet, or in its own."""
        owner = call._owner
        if owner is None or not owner.run_timer(lambda: call._run(armed)):
            gevent.spawn(call._run, armed)

    def _start_timer(self, call: DelayedCall, armed: int) -> Any:
        """Arrange ``call._due(armed)`` at ``call.time``; returns a handle with ``close()``."""
        remaining = max(0.0, call.time - self.seconds())
        timer = gevent.get_hub().loop.timer(remaining)
        # update=True: ``remaining`` is counted from the real clock just read, not
        # from the loop's last turn, which may be long ago.
        timer.start(call._due, armed, update=True)
        return timer


clock = Clock()


# Protocol class -> whether its callLater is Twisted's. One entry per class ever
# connected: a plain dict, as a weak one costs more than the lookup it saves.
_ROUTED: dict[type, bool] = {}


def adopt_twisted_timers(protocol: Any, owner: Any) -> None:
    """Point a Twisted protocol's ``callLater`` at its connection's timers.

    ``twisted.protocols.policies.TimeoutMixin`` (and other Twisted classes) schedule
    through a ``callLater`` method that calls ``reactor.callLater``; with no reactor
    running, such a timer would never fire. An instance attribute shadowing that
    one method routes it to ``owner.callLater`` instead, before ``connectionMade``.
    Only a ``callLater`` defined by Twisted itself is replaced: a protocol's own
    method of that name is left alone.
    """
    cls = type(protocol)
    routed = _ROUTED.get(cls)
    if routed is None:  # decided once per class: this runs for every connection
        method = getattr(cls, "callLater", None)
        routed = _ROUTED[cls] = getattr(method, "__module__", "").startswith("twisted.")
    if not routed:
        return
    try:
        protocol.callLater = owner.callLater
    except AttributeError:  # __slots__ without it: leave the protocol as it is
        log.debug("cannot route %r's callLater to greenpoint.clock", protocol)
