"""A stream handler kept connected: :class:`ReconnectingStream`.

:class:`~greenpoint.ReconnectingClient` keeps a *protocol* connected, for code
written the Twisted way. Scripts that use ``open()`` have a function that reads and
writes a stream instead; this runs it on every connection, with the same back-off
(:class:`~greenpoint.Backoff`), the same ``max_retries``, ``on_retry`` and
``when_connected``, and the same rule that a successful connection resets the delay.

The loop, in one greenlet: ``endpoint.open()``; ``handler(stream)``; close the
stream; wait the back-off delay; again. A handler that returns, or that raises
because the connection dropped (an ``OSError``), is reconnected; any other exception
from it is logged with its traceback and reconnected too, so one bad message does
not end a long-running script (``stop()`` from inside the handler ends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult

from greenpoint._backoff import (
    DEFAULT_FACTOR,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    DelayPolicy,
    retry_policy,
)
from greenpoint._checks import check_timeout
from greenpoint._clock import MONOTONIC
from greenpoint.errors import ConnectCancelledError, ConnectionDone, ConnectTimeoutError

__all__ = ["ReconnectingStream"]

log = logging.getLogger("greenpoint.reconnect")


class _Stopped(gevent.GreenletExit):  # type: ignore[misc]
    """Thrown into the loop by :meth:`ReconnectingStream.stop`: cancels ``open()`` too."""


class ReconnectingStream:
    """Keep ``handler(stream)`` running on a connection to ``endpoint``, reconnecting.

    ``start()`` spawns the loop; nothing blocks the caller except
    :meth:`when_connected` and :meth:`stop`.

    Args:
        endpoint: any client endpoint (``open(timeout)``) or a client description.
        handler: ``handler(stream)``, run in the loop's greenlet for each
            connection; the stream is closed after it returns or raises.
        initial_delay, max_delay, factor, jitter, max_retries, policy, clock,
            on_retry: as for :class:`~greenpoint.ReconnectingClient`.
        timeout: seconds for each ``open()`` (``None``: the endpoint's own).
    """

    def __init__(
        self,
        endpoint: Any,
        handler: Callable[[Any], Any],
        initial_delay: float = DEFAULT_INITIAL_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        factor: float = DEFAULT_FACTOR,
        jitter: float = DEFAULT_JITTER,
        max_retries: int | None = None,
        *,
        policy: DelayPolicy | None = None,
        clock: Any = None,
        on_retry: Callable[[int, float, BaseException | None], Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(endpoint, str | bytes):
            from greenpoint._registry import client_from_string

            endpoint = client_from_string(endpoint)
        if not callable(getattr(endpoint, "open", None)):
            raise TypeError(f"endpoint must be a client endpoint, not {endpoint!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable as handler(stream), not {handler!r}")
        policy = retry_policy(max_retries, policy, initial_delay, max_delay, factor, jitter)
        self.endpoint = endpoint
        self.handler = handler
        self.policy: DelayPolicy = policy
        self.max_retries = max_retries
        self.clock = clock if clock is not None else MONOTONIC
        self.on_retry = on_retry
        self.timeout = check_timeout(timeout)
        self._runner: gevent.Greenlet | None = None
        self._state = "idle"
        self._stopping = False
        self._final_error: BaseException | None = None
        self._retries = 0
        self._failures = 0
        self._connections = 0
        self._last_error: BaseException | None = None
        self._lost_reason: BaseException | None = None
        self._stream: Any = None
        self._waiters: list[tuple[AsyncResult, list[int | None]]] = []

    def __repr__(self) -> str:
        return f"<ReconnectingStream {self.endpoint} {self._state}>"

    # -- public state -------------------------------------------------------------

    @property
    def stream(self) -> Any:
        """The live stream, or ``None`` while not connected."""
        return self._stream

    @property
    def state(self) -> str:
        """``"idle"``, ``"connecting"``, ``"connected"``, ``"waiting"``, ``"stopping"``
        or ``"stopped"``."""
        return self._state

    @property
    def failures(self) -> int:
        """Failed attempts in a row (0 once connected)."""
        return self._failures

    @property
    def connections(self) -> int:
        """How many connections the handler has been run on."""
        return self._connections

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed attempt, or ``None``."""
        return self._last_error

    # -- starting and stopping ----------------------------------------------------

    def start(self) -> None:
        """Start connecting in a new greenlet; returns at once.

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
        """Stop: interrupt the handler (``GreenletExit``) or the attempt, close the stream.

        Blocks until the loop has ended, at most ``timeout`` seconds; returns whether
        it ended. Called from inside the handler, it returns at once and the loop
        ends when the handler returns. Waiters in :meth:`when_connected` get
        ``ConnectCancelledError``.
        """
        check_timeout(timeout)
        self._stopping = True
        runner = self._runner
        if runner is None or runner.dead:
            self._set_stopped()
            return True
        if self._state != "stopped":
            self._state = "stopping"
        if gevent.getcurrent() is runner:
            return True
        runner.kill(_Stopped, block=False)
        runner.join(timeout)
        return bool(runner.dead)

    def __enter__(self) -> ReconnectingStream:
        if self._runner is None or self._runner.dead:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def reset_delay(self) -> None:
        """Make the next retry wait the first delay again; restart the retry count."""
        self._retries = 0

    def when_connected(
        self, timeout: float | None = None, fail_after_failures: int | None = None
    ) -> Any:
        """Return the live stream, or block the calling greenlet until there is one.

        Raises:
            ConnectError: the last attempt's error after ``fail_after_failures``
                failures after this call, or once the loop gave up
                (``max_retries``); ``ConnectTimeoutError`` when ``timeout`` passed
                first; ``ConnectCancelledError`` once stopped.
        """
        if fail_after_failures is not None and (
            isinstance(fail_after_failures, bool)
            or not isinstance(fail_after_failures, int)
            or fail_after_failures < 1
        ):
            raise ValueError(
                f"fail_after_failures must be None or an int >= 1, not {fail_after_failures!r}"
            )
        check_timeout(timeout)
        if self._stream is not None:
            return self._stream
        if self._state == "stopped":
            raise self._stopped_error()
        if gevent.getcurrent() is self._runner:
            raise RuntimeError("when_connected() called from the handler would wait for itself")
        result: AsyncResult = AsyncResult()
        waiter = (result, [fail_after_failures])
        self._waiters.append(waiter)
        timer = gevent.spawn(self._expire, result, timeout) if timeout is not None else None
        try:
            return result.get()
        finally:
            if timer is not None:
                timer.kill(block=False)
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _expire(self, result: AsyncResult, timeout: float) -> None:
        self.clock.sleep(timeout)
        if not result.ready():
            error = ConnectTimeoutError(
                f"not connected to {self.endpoint} within {timeout} s", address=self.endpoint
            )
            error.__cause__ = self._last_error
            result.set_exception(error)

    def _stopped_error(self) -> BaseException:
        if self._final_error is not None:
            return self._final_error
        return ConnectCancelledError(
            f"{self!r} was stopped; start() it again to reconnect", address=self.endpoint
        )

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                stream = self._open_once()
                if stream is not None:
                    self._run_handler(stream)
                if self._stopping:
                    break
                if self.max_retries is not None and self._retries >= self.max_retries:
                    self._give_up()
                    break
                self._wait_before_retry()
        except _Stopped:
            pass
        finally:
            self._set_stopped()

    def _open_once(self) -> Any:
        self._state = "connecting"
        try:
            stream = self.endpoint.open(timeout=self.timeout)
        except Exception as exc:
            self._failures += 1
            self._last_error = exc
            log.warning("connecting to %s failed: %s", self.endpoint, exc)
            for result, remaining in list(self._waiters):
                if remaining[0] is None:
                    continue
                remaining[0] -= 1
                if remaining[0] == 0:
                    self._waiters.remove((result, remaining))
                    result.set_exception(exc)
            return None
        self._stream = stream
        self._state = "connected"
        self._retries = self._failures = 0
        self._connections += 1
        log.info("connected to %s", self.endpoint)
        waiters, self._waiters = self._waiters, []
        for result, _ in waiters:
            result.set(stream)
        return stream

    def _run_handler(self, stream: Any) -> None:
        reason: BaseException = ConnectionDone(f"the handler returned ({self.endpoint})")
        try:
            self.handler(stream)
        except OSError as exc:  # the connection dropped under the handler
            reason = exc
            log.warning("connection to %s lost: %s", self.endpoint, exc)
        except Exception as exc:
            reason = exc
            log.exception("handler %r failed on %s; reconnecting", self.handler, self.endpoint)
        finally:
            self._stream = None
            stream.close()
        self._lost_reason = reason

    def _wait_before_retry(self) -> None:
        self._retries += 1
        attempt = self._retries
        delay = float(self.policy(attempt))
        if not delay >= 0:  # a policy bug must not stop reconnecting
            delay = 0.0
        reason = self._last_error if self._failures else self._lost_reason
        log.info("reconnecting to %s in %.3g s (retry %d)", self.endpoint, delay, attempt)
        if self.on_retry is not None:
            try:
                self.on_retry(attempt, delay, reason)
            except Exception:
                log.exception("on_retry hook of %r failed", self)
        self._state = "waiting"
        self.clock.sleep(delay)

    def _give_up(self) -> None:
        error = self._last_error
        if error is None or not self._failures:
            error = ConnectCancelledError(
                f"{self!r} gave up: max_retries={self.max_retries}", address=self.endpoint
            )
            error.__cause__ = self._lost_reason
        log.warning("giving up on %s (max_retries=%d)", self.endpoint, self.max_retries)
        self._final_error = error

    def _set_stopped(self) -> None:
        self._state = "stopped"
        self._stopping = True
        waiters, self._waiters = self._waiters, []
        for result, _ in waiters:
            result.set_exception(self._stopped_error())
