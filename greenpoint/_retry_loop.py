"""The loop both reconnecting clients share: connect, stay connected, back off, again.

:class:`~greenpoint.ReconnectingClient` keeps a protocol connected and
:class:`~greenpoint.ReconnectingStream` a stream handler running. They differ only in
how one attempt connects, what staying connected means and how ``stop()`` ends a live
connection; :class:`RetryLoop` holds the rest once: the states, the counts of
retries and failures, the back-off wait and ``on_retry``, giving up after
``max_retries``, and the greenlets waiting in ``when_connected``.

One greenlet (the *runner*) runs :meth:`RetryLoop._run`::

    connecting ──connected──▶ connected ──connection ended──┐
        │ failed                                            ▼
        └──────────────▶ (max_retries reached? give up) ──▶ waiting ──▶ connecting
    stop() from anywhere ──▶ stopping ──▶ stopped

The delay comes from the policy (:mod:`greenpoint._backoff`); the retry number
counts from the last successful connection, which also resets it.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import gevent
from gevent.event import AsyncResult

from greenpoint._backoff import DelayPolicy
from greenpoint._checks import check_timeout, whole_number
from greenpoint._clock import MONOTONIC
from greenpoint.errors import ConnectCancelledError, ConnectTimeoutError

__all__ = ["RetryLoop", "Stopped"]

log = logging.getLogger("greenpoint.reconnect")

_Loop = TypeVar("_Loop", bound="RetryLoop")


class Stopped(gevent.GreenletExit):  # type: ignore[misc]  # gevent is untyped (Any)
    """Thrown into the runner by ``stop()``.

    A ``GreenletExit``, so an endpoint in the middle of ``open()`` treats it as
    cancellation: it closes what it opened and lets it through.
    """


class RetryLoop:
    """The reconnecting loop; a subclass says how to connect and stay connected.

    Subclasses implement :meth:`_connect_once` (one attempt: :meth:`_connected` on
    success, :meth:`_attempt_failed` or :meth:`_count_failure` on failure),
    :meth:`_stay_connected` (until the connection ends; sets ``_lost_reason``) and
    :meth:`_live` (the live protocol or stream); they may extend
    :meth:`_in_own_greenlet`, :meth:`_end_live` and :meth:`_stop_late`.
    """

    _own_greenlet_error = "when_connected() would wait for itself"

    def __init__(
        self,
        endpoint: Any,
        policy: DelayPolicy,
        max_retries: int | None,
        clock: Any,
        on_retry: Any,
    ) -> None:
        self.endpoint = endpoint
        self.policy: DelayPolicy = policy
        self.max_retries = max_retries
        self.clock = clock if clock is not None else MONOTONIC
        self.on_retry = on_retry
        self._runner: gevent.Greenlet | None = None
        self._state = "idle"
        self._stopping = False
        self._final_error: BaseException | None = None  # why when_connected fails once stopped
        self._retries = 0  # retries since the last successful connection
        self._failures = 0  # failed attempts in a row
        self._last_error: BaseException | None = None
        self._lost_reason: BaseException | None = None
        self._waiters: list[_Waiter] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint} {self._state}>"

    # -- public state -------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"idle"`` (not started), ``"connecting"``, ``"connected"``,
        ``"waiting"`` (the back-off delay), ``"stopping"`` or ``"stopped"``."""
        return self._state

    @property
    def failures(self) -> int:
        """Failed attempts in a row (0 once connected)."""
        return self._failures

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed attempt, or ``None``."""
        return self._last_error

    # -- starting and stopping ----------------------------------------------------

    def start(self) -> None:
        """Start connecting in a new greenlet; returns at once.

        A stopped client may be started again (it starts from a fresh back-off).

        Raises:
            RuntimeError: if it is already running.
        """
        if self._runner is not None and not self._runner.dead:
            raise RuntimeError(f"{self!r} is already running")
        self._stopping = False
        self._final_error = None
        self._retries = self._failures = 0
        self._last_error = None
        self._state = "connecting"
        self._runner = gevent.spawn(self._run)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop retrying and end the live connection; block until the loop has ended.

        A connect attempt or a back-off wait is abandoned at once; how a live
        connection ends is the subclass's (:meth:`_end_live`). Waiters in
        :meth:`when_connected` get ``ConnectCancelledError``.

        Args:
            timeout: seconds to wait for the loop to end.

        Returns:
            ``True`` if it ended within ``timeout``. Called from the loop's own
            greenlets (a callback, the handler) it returns ``True`` at once: the
            loop ends once that callback has returned.
        """
        check_timeout(timeout)
        runner = self._runner
        self._stopping = True
        if runner is None or runner.dead:
            self._set_stopped()
            return True
        if self._state != "stopped":
            self._state = "stopping"
        self._end_live(runner)
        if self._in_own_greenlet():
            return True  # waiting here would wait for ourselves
        runner.join(timeout)
        return True if runner.dead else self._stop_late(runner, timeout)

    def _end_live(self, runner: gevent.Greenlet) -> None:
        """End the live connection or the attempt (the runner's own call has no one to kill)."""
        if gevent.getcurrent() is not runner:
            runner.kill(Stopped, block=False)

    def _stop_late(self, runner: gevent.Greenlet, timeout: float | None) -> bool:
        """The loop did not end within ``stop()``'s timeout."""
        return False

    def __enter__(self: _Loop) -> _Loop:
        if self._runner is None or self._runner.dead:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def reset_delay(self) -> None:
        """Make the next retry wait the first delay again (``policy(1)``).

        The count of retries towards ``max_retries`` starts again too (as Twisted's
        ``resetDelay``). A successful connection does this by itself.
        """
        self._retries = 0

    # -- waiting for a connection -------------------------------------------------

    def when_connected(
        self, timeout: float | None = None, fail_after_failures: int | None = None
    ) -> Any:
        """Return the live protocol (or stream), or block the calling greenlet until there is one.

        Before ``start()`` it waits for the loop to be started and connected.

        Args:
            timeout: seconds to wait, measured on the loop's clock.
            fail_after_failures: raise the last attempt's error once this many
                attempts have failed after this call (1: the next failure raises).

        Raises:
            ConnectError: the last attempt's error after ``fail_after_failures``
                failures, or once the loop gave up (``max_retries``);
                ``ConnectTimeoutError`` when ``timeout`` passed first;
                ``ConnectCancelledError`` once stopped.
        """
        if fail_after_failures is not None:
            whole_number("fail_after_failures", fail_after_failures, 1)
        check_timeout(timeout)
        live = self._live()
        if live is not None:
            return live
        if self._state == "stopped":
            raise self._stopped_error()
        if self._in_own_greenlet():
            raise RuntimeError(self._own_greenlet_error)
        waiter = _Waiter(AsyncResult(), fail_after_failures)
        self._waiters.append(waiter)
        timer = gevent.spawn(self._expire, waiter, timeout) if timeout is not None else None
        try:
            return waiter.result.get()
        finally:
            if timer is not None:
                timer.kill(block=False)
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _expire(self, waiter: _Waiter, timeout: float) -> None:
        self.clock.sleep(timeout)
        if not waiter.result.ready():
            error = ConnectTimeoutError(
                f"not connected to {self.endpoint} within {timeout} s", address=self.endpoint
            )
            error.__cause__ = self._last_error
            waiter.result.set_exception(error)

    def _in_own_greenlet(self) -> bool:
        """Is the caller the loop itself? Blocking there would wait for itself."""
        return gevent.getcurrent() is self._runner

    def _stopped_error(self) -> BaseException:
        if self._final_error is not None:
            return self._final_error
        return ConnectCancelledError(
            f"{self!r} was stopped; start() it again to reconnect", address=self.endpoint
        )

    # -- the loop -------------------------------------------------------------------

    def _live(self) -> Any:
        raise NotImplementedError

    def _connect_once(self) -> bool:
        raise NotImplementedError

    def _stay_connected(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            while not self._stopping:
                if self._connect_once():
                    self._stay_connected()
                if self._stopping:
                    break
                if self.max_retries is not None and self._retries >= self.max_retries:
                    self._give_up()
                    break
                self._wait_before_retry()
        except Stopped:
            pass
        except BaseException as exc:
            if not isinstance(exc, gevent.GreenletExit):
                log.exception("%r stopped by an unexpected error", self)
                self._final_error = exc
            raise
        finally:
            self._set_stopped()

    def _connected(self, live: Any) -> None:
        """The attempt succeeded: reset the back-off and wake the waiters with ``live``."""
        self._state = "connected"
        self._retries = self._failures = 0
        log.info("connected to %s", self.endpoint)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.result.set(live)

    def _attempt_failed(
        self, error: BaseException, message: str = "connecting to %s failed: %s"
    ) -> None:
        """Count and log a failed attempt (call :meth:`_count_failure` after it)."""
        self._failures += 1
        self._last_error = error
        log.warning(message, self.endpoint, error)

    def _count_failure(self, error: BaseException) -> None:
        """Wake the ``when_connected`` callers whose ``fail_after_failures`` ran out."""
        for waiter in list(self._waiters):
            if waiter.remaining is None:
                continue
            waiter.remaining -= 1
            if waiter.remaining == 0:
                self._waiters.remove(waiter)
                waiter.result.set_exception(error)

    def _wait_before_retry(self) -> None:
        self._retries += 1
        attempt = self._retries
        delay = self._delay_for(attempt)
        reason = self._last_error if self._failures else self._lost_reason
        log.info("reconnecting to %s in %.3g s (retry %d)", self.endpoint, delay, attempt)
        if self.on_retry is not None:
            try:
                self.on_retry(attempt, delay, reason)
            except Exception:
                log.exception("on_retry hook of %r failed", self)
        self._state = "waiting"
        self.clock.sleep(delay)

    def _delay_for(self, attempt: int) -> float:
        delay = float(self.policy(attempt))
        if not delay >= 0:  # negative or NaN: a policy bug must not stop reconnecting
            log.error("delay policy %r gave %r for retry %d; using 0", self.policy, delay, attempt)
            return 0.0
        return delay

    def _give_up(self) -> None:
        # The last attempt's error if the last attempt failed; after a connection
        # that was lost (with max_retries=0), a cancellation caused by its reason.
        error = self._last_error
        if error is None or not self._failures:
            error = ConnectCancelledError(
                f"{self!r} gave up: max_retries={self.max_retries}", address=self.endpoint
            )
            error.__cause__ = self._lost_reason
        log.warning(
            "giving up on %s after %d retries in a row (max_retries=%d)",
            self.endpoint,
            self._retries,
            self.max_retries,
        )
        self._final_error = error

    def _set_stopped(self) -> None:
        self._state = "stopped"
        self._stopping = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.result.set_exception(self._stopped_error())


class _Waiter:
    """One greenlet blocked in ``when_connected``."""

    __slots__ = ("remaining", "result")

    def __init__(self, result: AsyncResult, remaining: int | None) -> None:
        self.result = result
        self.remaining = remaining
