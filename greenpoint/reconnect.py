"""A client connection that comes back: :class:`ReconnectingClient`.

One greenlet per client runs the loop: connect, wait until the connection is lost,
wait the back-off delay, connect again. Each attempt calls the endpoint's
``connect()`` afresh, so a host name is resolved again every time (a server that
moved is found) and every failed attempt has closed its sockets before the next.

The delay comes from a *policy*, any callable ``(attempt) -> seconds`` where
``attempt`` is the retry number since the last successful connection (1 for the
first retry); :class:`~greenpoint.Backoff` is the default. Time goes through a
*clock* with ``now()`` and ``sleep()`` (``greenpoint.testing.FakeClock`` in tests),
so back-off schedules are tested without real sleeping.

What Twisted does differently (ANCHORS.md §1.10), and why this does not:

* ``ReconnectingClientFactory`` works only with connectors, caps at one hour, lets
  jitter exceed ``maxDelay``, compounds its jitter, ignores a subclass's
  ``initialDelay`` and needs a manual ``resetDelay()`` on success. Here: any client
  endpoint, a pure policy (see :mod:`greenpoint._backoff`), a one-minute cap, and a
  successful connection resets the delay by itself.
* ``ClientService`` waits 1.5-2.5 s before its first retry (its failure count is
  incremented before the policy sees it). Here the first retry waits
  ``initial_delay`` (less at most the jitter fraction).
"""

from __future__ import annotations

import logging
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
from greenpoint._reactor_time import adopt_twisted_timers
from greenpoint._reconnecting_stream import ReconnectingStream  # the stream sibling
from greenpoint.errors import ConnectCancelledError, ConnectionDone, ConnectTimeoutError

__all__ = ["ReconnectingClient", "ReconnectingStream"]

log = logging.getLogger("greenpoint.reconnect")


class _Stopped(gevent.GreenletExit):  # type: ignore[misc]  # gevent is untyped (Any)
    """Thrown into the client's greenlet by :meth:`ReconnectingClient.stop`.

    A ``GreenletExit``, so an endpoint in the middle of ``open()`` treats it as
    cancellation: it closes what it opened and lets it through.
    """


class ReconnectingClient:
    """Keep one connection from ``factory`` to ``endpoint`` alive, reconnecting with back-off.

    ``start()`` spawns a greenlet that connects, waits for the connection to be lost,
    waits the back-off delay and connects again, until ``stop()`` (or until
    ``max_retries`` retries in a row have failed). Nothing blocks the caller except
    :meth:`when_connected` and :meth:`stop`.

    The factory is called as Twisted's connectors call it: ``doStart()`` and
    ``startedConnecting(client)`` before each attempt, ``buildProtocol(addr)`` on
    success, then ``clientConnectionFailed(client, reason)`` for an attempt that
    failed or ``clientConnectionLost(client, reason)`` once a connection ended, and
    ``doStop()`` after either. ``client`` is this object (Twisted passes a connector;
    this one has ``getDestination()``, ``stopConnecting()`` and ``disconnect()`` too).
    ``reason`` is an exception (``ConnectError``, ``ConnectionDone``,
    ``ConnectionLost``, ...). Every ``startedConnecting`` is followed by exactly one
    of ``clientConnectionFailed`` or ``clientConnectionLost``.

    Args:
        endpoint: any client endpoint (``connect(factory, timeout)``); a description
            string is parsed with ``client_from_string``.
        factory: a ``Factory``/``ClientFactory`` (Twisted's work too).
        initial_delay, max_delay, factor, jitter: the default :class:`Backoff`
            policy's knobs: the first retry waits ``initial_delay`` seconds, each
            further one ``factor`` times longer, never more than ``max_delay``;
            ``jitter`` is the largest fraction taken off at random.
        max_retries: give up after this many retries in a row failed (``None``:
            never; ``0``: never retry). Retries are counted from the last
            successful connection; the reconnect after a lost connection is one.
        policy: any ``(attempt) -> seconds`` callable, instead of the knobs above.
        clock: ``now()`` and ``sleep(seconds)`` (the real clock by default).
        on_retry: called as ``on_retry(attempt, delay, reason)`` before each
            back-off wait: the retry number, the seconds it will wait, and why
            (the failed attempt's error or the lost connection's reason).
        prepare: called as ``prepare(protocol)`` in the client's greenlet after
            ``connectionMade`` and before :meth:`when_connected` callers are woken
            (Twisted's ``ClientService(prepareConnection=)``); it may block (a
            login exchange: the connection reads in its own greenlet meanwhile).
            If it raises, the connection is aborted, the factory's
            ``clientConnectionLost`` gets the error, and the client retries
            after the back-off delay, as after a failed attempt.
    """

    def __init__(
        self,
        endpoint: Any,
        factory: Any,
        initial_delay: float = DEFAULT_INITIAL_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        factor: float = DEFAULT_FACTOR,
        jitter: float = DEFAULT_JITTER,
        max_retries: int | None = None,
        *,
        policy: DelayPolicy | None = None,
        clock: Any = None,
        on_retry: Any = None,
        prepare: Any = None,
    ) -> None:
        if isinstance(endpoint, str | bytes):
            from greenpoint._registry import client_from_string

            endpoint = client_from_string(endpoint)
        if not callable(getattr(endpoint, "connect", None)):
            raise TypeError(f"endpoint must be a client endpoint, not {endpoint!r}")
        if not callable(getattr(factory, "buildProtocol", None)):
            raise TypeError(f"factory must have buildProtocol(), not {factory!r}")
        policy = retry_policy(max_retries, policy, initial_delay, max_delay, factor, jitter)
        self.endpoint = endpoint
        self.factory = factory
        self.policy: DelayPolicy = policy
        self.max_retries = max_retries
        self.clock = clock if clock is not None else MONOTONIC
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare must be a callable (protocol) -> None, not {prepare!r}")
        self.on_retry = on_retry
        self.prepare = prepare
        self._factory = _AttemptFactory(self)
        self._runner: gevent.Greenlet | None = None
        self._state = "idle"
        self._stopping = False
        self._final_error: BaseException | None = None  # why when_connected fails once stopped
        self._retries = 0  # retries since the last successful connection
        self._failures = 0  # failed attempts in a row
        self._last_error: BaseException | None = None
        self._protocol: Any = None
        self._transport: Any = None
        self._connector: Any = None
        self._lost_reason: BaseException | None = None
        self._waiters: list[_Waiter] = []

    def __repr__(self) -> str:
        return f"<ReconnectingClient {self.endpoint} {self._state}>"

    # -- public state -------------------------------------------------------------

    @property
    def protocol(self) -> Any:
        """The live protocol, or ``None`` while not connected."""
        return self._protocol

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
        self._retries = 0
        self._failures = 0
        self._last_error = None
        self._state = "connecting"
        self._runner = gevent.spawn(self._run)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop retrying and close the live connection; block until it is closed.

        A connection is closed with ``loseConnection()`` (what was written is sent
        first); a connect attempt or a back-off wait is abandoned at once. Waiters
        in :meth:`when_connected` get ``ConnectCancelledError``.

        Args:
            timeout: seconds to let the connection flush; after that it is aborted.

        Returns:
            ``True`` if everything closed within ``timeout``, ``False`` if the
            connection had to be aborted. Called from the factory's or the
            protocol's callbacks it returns ``True`` at once: the connection is closed
            (flushed) and the client stops once the callback has returned.
        """
        check_timeout(timeout)
        runner = self._runner
        self._stopping = True
        if runner is None or runner.dead:
            self._set_stopped()
            return True
        if self._state != "stopped":
            self._state = "stopping"
        transport = self._transport
        if transport is not None and not transport.disconnected:
            transport.loseConnection()  # the loop wakes when connectionLost has run
        elif gevent.getcurrent() is not runner:
            runner.kill(_Stopped, block=False)
        if self._in_own_greenlet():
            # Waiting here would wait for ourselves: the loop sees _stopping (and the
            # connection closes) once the callback returns.
            return True
        runner.join(timeout)
        if runner.dead:
            return True
        log.warning("%r did not stop within %s s; aborting the connection", self, timeout)
        transport = self._transport
        if transport is not None:
            transport.abortConnection()
        runner.kill(_Stopped, block=True)
        return False

    def __enter__(self) -> ReconnectingClient:
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
        """Return the live protocol, or block the calling greenlet until there is one.

        Before ``start()`` it waits for the client to be started and connected.

        Args:
            timeout: seconds to wait, measured on the client's clock.
            fail_after_failures: raise the last attempt's error once this many
                attempts have failed after this call (1: the next failure raises).

        Raises:
            ConnectError: the last attempt's error after ``fail_after_failures``
                failures, or once the client gave up (``max_retries``);
                ``ConnectTimeoutError`` when ``timeout`` passed first;
                ``ConnectCancelledError`` once the client is stopped.
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
        if self._protocol is not None:
            return self._protocol
        if self._state == "stopped":
            raise self._stopped_error()
        if self._in_own_greenlet():
            raise RuntimeError(
                "when_connected() would wait for itself: called from the client's own "
                "callbacks or its protocol's while not connected"
            )
        waiter = _Waiter(AsyncResult(), fail_after_failures)
        self._waiters.append(waiter)
        timer = None
        if timeout is not None:
            timer = gevent.spawn(self._expire, waiter, timeout)
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
        """Is the caller the client's loop, or the live connection's reader or writer?

        Factory callbacks run in the loop; protocol callbacks (and producers) in the
        connection's greenlets. Blocking there until the client stops or connects
        would wait for the very greenlet that has to do it.
        """
        current = gevent.getcurrent()
        if current is self._runner:
            return True
        transport = self._transport
        # The transport's greenlets are private to it; we only compare identities.
        return transport is not None and current in (
            getattr(transport, "_reader", None),
            getattr(transport, "_writer", None),
        )

    def _stopped_error(self) -> BaseException:
        if self._final_error is not None:
            return self._final_error
        return ConnectCancelledError(
            f"{self!r} was stopped; start() it again to reconnect", address=self.endpoint
        )

    # -- Twisted's IConnector, for callbacks written against one ------------------

    def getDestination(self) -> Any:
        """The endpoint connected to (its ``str()`` is a description)."""
        return self.endpoint

    def stopConnecting(self) -> None:
        """Abandon the attempt in progress; it counts as a failed attempt."""
        if self._state != "connecting" or self._connector is None:
            raise RuntimeError(f"{self!r} is not connecting")
        self._connector.stopConnecting()

    def disconnect(self) -> None:
        """Drop the current connection or attempt; the client reconnects after the delay.

        (``stop()`` is what stops reconnecting.)
        """
        if self._transport is not None and not self._transport.disconnected:
            self._transport.loseConnection()
        elif self._state == "connecting" and self._connector is not None:
            self._connector.stopConnecting()

    # -- the loop -------------------------------------------------------------------

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
        except _Stopped:
            pass
        except BaseException as exc:
            if not isinstance(exc, gevent.GreenletExit):
                log.exception("%r stopped by an unexpected error", self)
                self._final_error = exc
            raise
        finally:
            self._connector = None
            self._set_stopped()

    def _connect_once(self) -> bool:
        """One attempt; ``True`` once connected (``connectionMade`` has run)."""
        self._state = "connecting"
        self._lost_reason = None
        try:
            proxy = self.endpoint.connect(self._factory)
        except _Stopped as exc:
            reason = ConnectCancelledError(
                f"connecting to {self.endpoint} was stopped", address=self.endpoint
            )
            reason.__cause__ = exc
            self._call_factory("clientConnectionFailed", reason)
            raise
        except Exception as exc:
            self._attempt_failed(exc)
            return False
        finally:
            self._connector = None
        self._transport = proxy.transport
        if self.prepare is not None and not self._prepared(proxy.wrapped):
            return False
        self._protocol = proxy.wrapped
        self._state = "connected"
        self._retries = 0  # a successful connection resets the delay
        self._failures = 0
        log.info("connected to %s", self.endpoint)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.result.set(self._protocol)
        return True

    def _prepared(self, protocol: Any) -> bool:
        """Run ``prepare``; on failure drop the connection and count a failed attempt."""
        transport = self._transport
        try:
            self.prepare(protocol)
        except BaseException as exc:
            transport.abortConnection()
            transport.wait_closed()
            self._transport = None
            if not isinstance(exc, Exception):  # stopped or killed while preparing
                self._call_factory("clientConnectionLost", self._lost_reason)
                raise
            log.warning(
                "preparing the connection to %s failed: %r; dropping it", self.endpoint, exc
            )
            self._failures += 1
            self._last_error = exc
            self._call_factory("clientConnectionLost", exc)
            self._count_failure(exc)
            return False
        return True

    def _attempt_failed(self, error: BaseException) -> None:
        self._failures += 1
        self._last_error = error
        log.warning("connecting to %s failed: %s", self.endpoint, error)
        self._call_factory("clientConnectionFailed", error)
        self._count_failure(error)

    def _count_failure(self, error: BaseException) -> None:
        """Wake the ``when_connected`` callers whose ``fail_after_failures`` ran out."""
        for waiter in list(self._waiters):
            if waiter.remaining is None:
                continue
            waiter.remaining -= 1
            if waiter.remaining == 0:
                self._waiters.remove(waiter)
                waiter.result.set_exception(error)

    def _stay_connected(self) -> None:
        transport = self._transport
        try:
            transport.wait_closed()
        finally:
            # Stopped (or killed) while connected: close, flushing what was written.
            if not transport.disconnected:
                transport.loseConnection()
                transport.wait_closed()
            reason = self._lost_reason
            self._protocol = None
            self._transport = None
            if isinstance(reason, ConnectionDone):
                log.info("connection to %s closed: %s", self.endpoint, reason)
            else:
                log.warning("connection to %s lost: %s", self.endpoint, reason)
            self._call_factory("clientConnectionLost", reason)

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
        error = self._last_error
        if error is None:  # a lost connection with max_retries=0
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

    def _call_factory(self, name: str, reason: BaseException | None) -> None:
        """Call a client callback, then the ``doStop()`` that Twisted calls after it."""
        try:
            callback = getattr(self.factory, name, None)
            if callback is not None:
                try:
                    callback(self, reason)
                except Exception:
                    log.exception("Unhandled error in %r.%s", self.factory, name)
        finally:
            self._factory.flush_stops()


class _Waiter:
    """One greenlet blocked in ``when_connected``."""

    __slots__ = ("remaining", "result")

    def __init__(self, result: AsyncResult, remaining: int | None) -> None:
        self.result = result
        self.remaining = remaining


class _AttemptFactory:
    """The factory ``connect()`` gets on each attempt, in front of the user's.

    It passes the client (not the per-attempt connector) to ``startedConnecting``,
    wraps each protocol so that the client learns why its connection ended, and holds
    back ``doStop()`` until ``clientConnectionFailed``/``Lost`` has run, in Twisted's
    order.
    """

    noisy = False

    def __init__(self, client: ReconnectingClient) -> None:
        self.client = client
        self._pending_stops = 0

    def __repr__(self) -> str:
        return f"<ReconnectingClient factory for {self.client.factory!r}>"

    def doStart(self) -> None:
        self.client.factory.doStart()

    def doStop(self) -> None:
        self._pending_stops += 1

    def flush_stops(self) -> None:
        while self._pending_stops:
            self._pending_stops -= 1
            try:
                self.client.factory.doStop()
            except Exception:
                log.exception("Unhandled error in %r.doStop", self.client.factory)

    def startedConnecting(self, connector: Any) -> None:
        self.client._connector = connector
        started = getattr(self.client.factory, "startedConnecting", None)
        if started is not None:
            started(self.client)

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self.client.factory.buildProtocol(addr)
        if protocol is None:
            return None
        if getattr(protocol, "factory", None) is None:
            try:
                protocol.factory = self.client.factory
            except AttributeError:
                pass
        return _ReconnectingProtocol(protocol, self.client)


class _ReconnectingProtocol:
    """Stands in front of the user's protocol to see ``connectionLost``'s reason.

    Everything else is passed through, attribute reads and writes included, so the
    transport drives the user's protocol as it would without us.
    """

    def __init__(self, wrapped: Any, client: ReconnectingClient) -> None:
        object.__setattr__(self, "wrapped", wrapped)
        object.__setattr__(self, "_client", client)

    def __repr__(self) -> str:
        return f"<reconnecting {self.wrapped!r}>"

    def makeConnection(self, transport: Any) -> None:
        object.__setattr__(self, "transport", transport)
        adopt_twisted_timers(self.wrapped, transport)  # the transport saw only us
        self.wrapped.makeConnection(transport)

    def connectionLost(self, reason: BaseException) -> None:
        client = self._client
        client._lost_reason = reason
        if client._protocol is self.wrapped:
            client._protocol = None  # no longer live, even before the loop wakes
        self.wrapped.connectionLost(reason)

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.wrapped, name, value)
