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

from greenpoint._backoff import (
    DEFAULT_FACTOR,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    DelayPolicy,
    retry_policy,
)
from greenpoint._connect import set_factory
from greenpoint._reconnecting_stream import ReconnectingStream  # the stream sibling
from greenpoint._retry_loop import RetryLoop, Stopped
from greenpoint.errors import ConnectCancelledError, ConnectionDone

__all__ = ["ReconnectingClient", "ReconnectingStream"]

log = logging.getLogger("greenpoint.reconnect")


class ReconnectingClient(RetryLoop):
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
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare must be a callable (protocol) -> None, not {prepare!r}")
        super().__init__(endpoint, policy, max_retries, clock, on_retry)
        self.factory = factory
        self.prepare = prepare
        self._factory = _AttemptFactory(self)
        self._protocol: Any = None
        self._transport: Any = None
        self._connector: Any = None

    # -- public state -------------------------------------------------------------

    @property
    def protocol(self) -> Any:
        """The live protocol, or ``None`` while not connected."""
        return self._live()

    def _live(self) -> Any:
        # None as soon as the transport has closed (before connectionLost is
        # called), even though the loop has not woken up to forget it yet.
        transport = self._transport
        if self._protocol is None or transport is None or transport.disconnected:
            return None
        return self._protocol

    # -- stopping -------------------------------------------------------------------

    def _end_live(self, runner: gevent.Greenlet) -> None:
        # A live connection is closed with loseConnection(): what was written is
        # sent first, and the loop wakes when connectionLost has run.
        transport = self._transport
        if transport is not None and not transport.disconnected:
            transport.loseConnection()
        else:
            super()._end_live(runner)

    def _stop_late(self, runner: gevent.Greenlet, timeout: float | None) -> bool:
        log.warning("%r did not stop within %s s; aborting the connection", self, timeout)
        transport = self._transport
        if transport is not None:
            transport.abortConnection()
        runner.kill(Stopped, block=True)
        return False

    _own_greenlet_error = (
        "when_connected() would wait for itself: called from the client's own "
        "callbacks or its protocol's while not connected"
    )

    def _in_own_greenlet(self) -> bool:
        """Is the caller the client's loop, or the live connection's reader or writer?

        Factory callbacks run in the loop; protocol callbacks (and producers) in the
        connection's greenlets. Blocking there until the client stops or connects
        would wait for the very greenlet that has to do it.
        """
        if super()._in_own_greenlet():
            return True
        transport = self._transport
        return transport is not None and bool(transport.owns(gevent.getcurrent()))

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

    # -- one connection ---------------------------------------------------------------

    def _connect_once(self) -> bool:
        """One attempt; ``True`` once connected (``connectionMade`` has run)."""
        self._state = "connecting"
        self._lost_reason = None
        try:
            protocol = self.endpoint.connect(self._factory)
        except Stopped as exc:
            reason = ConnectCancelledError(
                f"connecting to {self.endpoint} was stopped", address=self.endpoint
            )
            reason.__cause__ = exc
            self._call_factory("clientConnectionFailed", reason)
            raise
        except Exception as exc:
            self._attempt_failed(exc)
            self._call_factory("clientConnectionFailed", exc)
            self._count_failure(exc)
            return False
        finally:
            self._connector = None
        self._transport = protocol.transport
        if self.prepare is not None and not self._prepared(protocol):
            return False
        self._protocol = protocol
        self._connected(protocol)
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
            self._lost_reason = transport.close_reason
            if not isinstance(exc, Exception):  # stopped or killed while preparing
                self._call_factory("clientConnectionLost", self._lost_reason)
                raise
            self._attempt_failed(exc, "preparing the connection to %s failed: %r; dropping it")
            self._call_factory("clientConnectionLost", exc)
            self._count_failure(exc)
            return False
        return True

    def _stay_connected(self) -> None:
        transport = self._transport
        try:
            transport.wait_closed()
        finally:
            # Stopped (or killed) while connected: close, flushing what was written.
            if not transport.disconnected:
                transport.loseConnection()
                transport.wait_closed()
            reason = self._lost_reason = transport.close_reason
            self._protocol = None
            self._transport = None
            if isinstance(reason, ConnectionDone):
                log.info("connection to %s closed: %s", self.endpoint, reason)
            else:
                log.warning("connection to %s lost: %s", self.endpoint, reason)
            self._call_factory("clientConnectionLost", reason)

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


class _AttemptFactory:
    """The factory ``connect()`` gets on each attempt, in front of the user's.

    It passes the client (not the per-attempt connector) to ``startedConnecting``,
    gives each protocol the user's factory (not this one), and holds back
    ``doStop()`` until ``clientConnectionFailed``/``Lost`` has run, in Twisted's order.
    The protocol itself is the user's: the client learns why its connection ended
    from the transport (``close_reason``).
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
        if protocol is not None:
            set_factory(protocol, self.client.factory)  # before connect() sets ours
        return protocol
