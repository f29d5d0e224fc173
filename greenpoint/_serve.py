"""The accept loop: one greenlet (for a plain gevent listener, the hub) accepts, and one
greenlet per connection runs the handler.

:class:`ListeningPort` is what ``ServerEndpoint.serve()`` (and ``listen()``, through
the protocol layer) gives back. It works with any listener that follows the protocol
in :mod:`greenpoint.endpoints._base`: a plain gevent socket, or a TLS/PROXY listener
whose ``prepare()`` finishes a connection in the connection's own greenlet.

The per-connection path is kept as short as gevent's ``StreamServer``: accept, spawn,
remember the greenlet and its stream; nothing is queued.

Stopping follows what grpc-go and Go's ``net/http`` do: close the listener first so
that new clients are refused at once, let running handlers finish for a while, then
kill what is left and close its stream.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint._accept import MAX_ACCEPTS_PER_WAKE, AcceptWatcher, accept_function, can_watch
from greenpoint._address import (
    SOCKADDR_TYPES,
    IPv4Address,
    as_address,
    listener_address,
    peer_address,
)
from greenpoint._checks import check_timeout
from greenpoint._clock import MONOTONIC, Clock
from greenpoint._limits import (
    ConnectionLimits,
    PortStats,
    next_sweep_delay,
    peer_key,
    stream_idle_seconds,
)
from greenpoint._served_socket import ServedSocket
from greenpoint._stamped_socket import stamped
from greenpoint._wrapping_listener import log_prepare_failure
from greenpoint.errors import IdleTimeoutError

__all__ = ["ListeningPort", "next_backoff_delay"]

logger = logging.getLogger("greenpoint")

# Back-off between accept() failures caused by resource exhaustion (gevent's
# StreamServer uses the same bounds): short enough that a server recovers quickly once
# a file descriptor is free, long enough that it does not spin while none is.
MIN_ACCEPT_DELAY = 0.01
MAX_ACCEPT_DELAY = 1.0

# How long killed handlers get to unwind (run their finally blocks) before their
# streams are closed under them anyway.
KILL_GRACE = 1.0

# One pending connection failed before we took it. accept(2) ("Error handling") says
# Linux reports the connection's pending network error from accept() and asks the
# caller to retry as for EAGAIN; the next connection in the queue is unaffected, so
# retry at once. EPERM: a firewall rule refused this one connection.
_RETRY_AT_ONCE = frozenset(
    code
    for code in (
        errno.ECONNABORTED,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EINTR,
        errno.EPERM,
        errno.EPROTO,
        errno.ENETDOWN,
        errno.ENOPROTOOPT,
        getattr(errno, "EHOSTDOWN", None),
        getattr(errno, "ENONET", None),
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
    )
    if code is not None
)

# A handler that raises one of these met a peer that reset or went away. Not
# ConnectionRefusedError: that comes from a connection the handler itself made.
_PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

# The listener itself is gone or was never listening: nothing to retry.
_FATAL = frozenset({errno.EBADF, errno.EINVAL, errno.ENOTSOCK})

# Accepting pauses at max_connections each time the cap is reached; under a flood
# that can be many times a second, so the INFO line saying so comes at most this often.
CAP_LOG_INTERVAL = 10.0

_NO_LIMITS = ConnectionLimits()

_AF_INET = socket.AF_INET


class _HandlerGreenlet(gevent.Greenlet):  # type: ignore[misc]  # gevent is untyped
    """A handler's greenlet spawned by the hub's accept callback.

    gevent keeps each greenlet's spawning stack (for its greenlet tree) up to ten
    frames; spawned from the hub that is several frames more than from an accept
    greenlet, about 200 bytes per idle connection. None is kept: it would always be
    the accept callback, and reading a frame's line number costs ~1,500 instructions
    per connection. (``spawning_greenlet`` still says the hub spawned it.)
    """

    spawning_stack_limit = 0


def _timed_out(exc: BaseException) -> bool:
    """A TLS handshake or PROXY header that did not finish in time."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError)


def next_backoff_delay(previous: float) -> float:
    """The delay before the next accept() after a resource-exhaustion error.

    ``previous`` is the last delay (0 after a success); delays double from
    :data:`MIN_ACCEPT_DELAY` up to :data:`MAX_ACCEPT_DELAY`.
    """
    return min(MAX_ACCEPT_DELAY, max(MIN_ACCEPT_DELAY, previous * 2))


def _peer_of(stream: Any) -> Any:
    """The peer's address for a log line; the stream's repr if it cannot say.

    A prepared stream says itself (``getPeer``): a PROXY stream's peer is the
    client its header named, an IP address even when the proxy came over UNIX.
    """
    try:
        return peer_address(stream)
    except Exception:
        return stream


class ListeningPort:
    """A listener being served: an accept loop and one greenlet per connection.

    Create it with :meth:`start` (``ServerEndpoint.serve()`` does). Handlers may read
    :attr:`closing`, which becomes true as soon as a stop begins. :attr:`limits` are
    the :class:`ConnectionLimits` it enforces and :attr:`stats` what it has done.

    As a context manager, leaving the block calls ``stop_listening(timeout=0)``: the
    listener closes and handlers still running are killed at once, like a trio
    nursery being cancelled. Call ``stop_listening(timeout)`` inside the block for a
    graceful drain.
    """

    # Where the accept back-off and the idle sweep wait (and the cap log reads the
    # time): tests give a subclass a clock of their own.
    _clock: Clock = MONOTONIC

    # The server endpoint that bound the listener (set by serve()/listen()), so that
    # client_description() knows about TLS; None for a bare listener.
    endpoint: Any = None

    _shares_listener = False

    @property
    def shares_listener(self) -> bool:
        """Whether other processes accept on the same socket (``greenpoint wsgi
        --workers N``). Then the port takes one connection per wake-up and lets it run
        before it takes the next, so that a burst of connections is shared between the
        processes instead of all going to whichever woke first (gunicorn sets
        gevent's ``max_accept`` to 1 for the same reason)."""
        return self._shares_listener

    @shares_listener.setter
    def shares_listener(self, value: bool) -> None:
        self._shares_listener = bool(value)
        if self._acceptor is not None:
            self._acceptor.max_per_wake = 1 if value else MAX_ACCEPTS_PER_WAKE

    def __init__(
        self,
        listener: Any,
        handler: Callable[[Any, Any], Any],
        pool: Any = None,
        on_stop: Callable[[], Any] | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.listener = listener
        self.limits = limits or _NO_LIMITS
        self.handler = handler
        # A handler that closes its stream on every way out (ProtocolHandler) saves
        # the second close() per connection.
        self._handler_closes = bool(getattr(handler, "closes_stream", False))
        self.pool = pool
        self.closing = False
        self._on_stop = on_stop
        self._host = listener_address(listener)
        # greenlet -> the stream it serves, so that stop can close streams of
        # handlers that were killed before they ever ran.
        self._handlers: dict[Any, Any] = {}
        self._accept_greenlet: Any = None  # set by start()
        self._acceptor: AcceptWatcher | None = None  # when the hub accepts
        self._stop_started = False
        self._stopped = Event()
        self._fatal_error: BaseException | None = None
        # Accounting: the per-connection count is a plain int; rare events (limits,
        # timeouts) go in a Counter keyed by PortStats field name.
        self._accepted = 0
        self._events: Counter[str] = Counter()
        self._per_peer: dict[str, int] = {}
        self._below_cap: Event | None = None  # set while accepting waits at the cap
        self._cap_logged_at = -CAP_LOG_INTERVAL
        self._unprepared: set[Any] = set()  # greenlets still in prepare() (TLS, PROXY)
        self._sweeper: Any = None

    @classmethod
    def start(
        cls,
        listener: Any,
        handler: Callable[[Any, Any], Any],
        pool: Any = None,
        on_stop: Callable[[], Any] | None = None,
        limits: ConnectionLimits | None = None,
    ) -> ListeningPort:
        """Start serving ``listener``: ``handler(stream, address)`` per connection.

        Returns at once; accepting runs in its own greenlet. ``pool`` (a
        ``gevent.pool.Pool``) caps concurrent handlers: accepting waits for a free
        slot. ``on_stop`` runs once, after everything is closed. ``limits`` (a
        :class:`ConnectionLimits`) are enforced as :mod:`greenpoint._limits` says.
        """
        port = cls(listener, handler, pool, on_stop, limits)
        port._accept_greenlet = gevent.spawn(port._accept_loop)
        if port.limits.idle_timeout is not None:
            port._sweeper = gevent.spawn(port._sweep_idle, port.limits.idle_timeout)
        return port

    # -- what users call -------------------------------------------------------

    def get_host(self) -> Any:
        """The address the listener is bound to (the real port when 0 was asked)."""
        return self._host

    getHost = get_host

    def client_description(
        self, *, trust_root: str | None = None, hostname: str | None = None
    ) -> str:
        """The client description that reaches this port, e.g. ``tcp:127.0.0.1:41467``.

        A wildcard interface gives the loopback address of its family; a TLS port
        gives a ``tls:`` description whose ``trustRoots`` is ``trust_root`` or,
        when it is self-signed, the server's certificate file; ``hostname`` is the
        name to verify instead of the address. See :mod:`greenpoint._client_description`.
        """
        from greenpoint._client_description import client_description_for

        return client_description_for(
            self.endpoint, self._host, trust_root=trust_root, hostname=hostname
        )

    @property
    def handler_count(self) -> int:
        """How many connections are being handled right now."""
        return len(self._handlers)

    @property
    def stats(self) -> PortStats:
        """A snapshot of what this port has accepted, has open and has closed, and why."""
        return PortStats(accepted=self._accepted, active=len(self._handlers), **self._events)

    def count_event(self, name: str, peer: Any = None, why: str | None = None) -> None:
        """Count one limit-caused event (a :class:`PortStats` field); log ``why`` at INFO.

        For front ends that enforce their own limits on this port's connections
        (HTTP header timeouts): the count shows in :attr:`stats`.
        """
        self._events[name] += 1
        if why is not None:
            logger.info("connection from %s on %s closed: %s", peer, self._host, why)

    def stop_listening(self, timeout: float | None = None) -> None:
        """Stop: refuse new connections, drain, then abort; blocks until all closed.

        The listener is closed first, so new clients are refused at once. Running
        handlers get ``timeout`` seconds to finish (``None``: as long as they need,
        ``0``: none); those still running are then killed and their streams closed.
        ``on_stop`` runs last. A second call waits for the first to finish.

        Called from inside a handler, that handler's own connection is left to end
        when the handler returns.
        """
        check_timeout(timeout)
        current = self._caller()
        if self._stop_started:
            if current not in self._handlers:  # a handler waiting here would deadlock
                self._stopped.wait()
            return
        self._stop_started = True
        self.closing = True
        try:
            self._close_listener()
            running = [g for g in self._handlers if g is not current]
            if running and timeout != 0:
                gevent.joinall(running, timeout=timeout)
        finally:
            # Also when the drain itself was interrupted (a gevent.Timeout around
            # this call): nothing may outlive the port.
            self._abort_handlers(current)
            accepting = self._accept_greenlet
            if accepting is not None and accepting is not current:
                accepting.join()
            try:
                if self._on_stop is not None:
                    self._on_stop()
            except Exception:
                logger.exception("on_stop callback of %r failed", self)
            finally:
                self._stopped.set()

    stopListening = stop_listening

    def _caller(self) -> Any:
        """The handler (table key) whose code calls ``stop_listening``, if any."""
        return gevent.getcurrent()

    def serve_forever(self) -> None:
        """Block the calling greenlet until the port is stopped.

        If the wait is interrupted (``KeyboardInterrupt``, ``kill()``), the port is
        stopped with ``timeout=0`` before the exception goes on. If accepting failed
        for good (the listener was closed under us), that error is raised once the
        port has stopped.
        """
        try:
            self._stopped.wait()
        except BaseException:
            self.stop_listening(timeout=0)
            raise
        if self._fatal_error is not None:
            raise self._fatal_error

    def __enter__(self) -> ListeningPort:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop_listening(timeout=0)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else "closing" if self.closing else "serving"
        return f"<ListeningPort {self._host} {state}, {len(self._handlers)} connections>"

    # -- the accept loop -------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self.listener
        accept_unprepared = getattr(listener, "accept_unprepared", None)
        prepare = getattr(listener, "prepare", None) if accept_unprepared else None
        family = getattr(listener, "family", None)
        one_connection = bool(getattr(listener, "one_connection", False))
        pool = self.pool
        wait_for_slot = getattr(pool, "wait_available", None)
        spawn = pool.spawn if pool is not None else gevent.spawn
        handlers = self._handlers
        run = self._run_handler
        cap = self.limits.max_connections
        # UNIX sockets keep no time of their last data: on a port with idle_timeout
        # they are re-made as sockets that note it themselves.
        stamp = self.limits.idle_timeout is not None and family == socket.AF_UNIX
        # A user's handler gets the cheaper ServedSocket; a handler that runs a
        # Transport (closes_stream) reads and writes the raw socket itself.
        make = gsocket.socket if (self._handler_closes or stamp) else ServedSocket
        if pool is None and not one_connection and not accept_unprepared and can_watch(listener):
            self._accept_in_hub(AcceptWatcher(listener, make), family, stamp)
            return
        accept = accept_unprepared or accept_function(listener, make)
        delay = 0.0
        while True:
            if wait_for_slot is not None:
                wait_for_slot()
            if cap is not None and len(handlers) >= cap:
                self._wait_below_cap(cap)
            try:
                stream, address = accept()
            except Exception as exc:
                if self.closing:
                    return
                delay = self._accept_failed(exc, delay)
                if delay < 0:
                    return
                continue
            delay = 0.0
            if self.closing:  # a listener that still accepted after close()
                stream.close()
                return
            if stamp:
                stream = stamped(stream)
            try:
                greenlet = spawn(run, stream, address, family, prepare)
            except BaseException:
                stream.close()
                raise
            # A full shared pool can block spawn() long enough for the handler to
            # finish; only a live handler is remembered.
            if not greenlet.dead:
                handlers[greenlet] = stream
            self._accepted += 1
            if self._shares_listener:
                gevent.sleep(0)
            if one_connection:  # systemd Accept=yes: the port ends with its connection
                greenlet.join()
                gevent.spawn(self.stop_listening)
                return

    def _accept_in_hub(self, acceptor: AcceptWatcher, family: int | None, stamp: bool) -> None:
        """The accept loop for a plain gevent listener: the hub accepts (no switch to
        this greenlet per connection); this greenlet wakes only at the cap or on an
        error, and decides as the loop above does."""
        handlers = self._handlers
        run = self._run_handler
        spawn = _HandlerGreenlet.spawn
        cap = self.limits.max_connections

        def on_accept(stream: Any, address: Any) -> bool:
            # Runs in the hub: nothing here may block.
            if self.closing:  # a listener that still accepted after close()
                stream.close()
                return False
            if stamp:
                stream = stamped(stream)
            try:
                handlers[spawn(run, stream, address, family, None)] = stream
            except BaseException:
                stream.close()
                raise
            self._accepted += 1
            return cap is None or len(handlers) < cap

        self._run_acceptor(acceptor, on_accept)

    def _run_acceptor(self, acceptor: AcceptWatcher, on_accept: Any) -> None:
        """Let the hub accept with ``on_accept`` until the port closes; in between,
        wait below the cap or decide on an accept error as the greenlet loop does."""
        handlers = self._handlers
        cap = self.limits.max_connections
        self._acceptor = acceptor
        if self._shares_listener:
            acceptor.max_per_wake = 1
        delay = 0.0
        try:
            while True:
                if cap is not None and len(handlers) >= cap:
                    self._wait_below_cap(cap)
                accepted = self._accepted
                error = acceptor.run(on_accept)
                if self.closing:
                    return
                if error is None:
                    continue
                if self._accepted != accepted:
                    delay = 0.0
                delay = self._accept_failed(error, delay)
                if delay < 0:
                    return
        finally:
            acceptor.close()

    def _wait_below_cap(self, cap: int) -> None:
        """Stop accepting until fewer than ``cap`` connections are open.

        New clients wait in the kernel's backlog meanwhile (and beyond it, their
        SYNs are retried by their kernel): nothing is accepted and then dropped.
        """
        self._events["paused_at_cap"] += 1
        now = self._clock.now()
        if now - self._cap_logged_at >= CAP_LOG_INTERVAL:
            self._cap_logged_at = now
            logger.info(
                "%s has %d connections (max_connections); accepting paused until one ends",
                self._host,
                len(self._handlers),
            )
        below = self._below_cap = Event()
        try:
            while len(self._handlers) >= cap:
                below.clear()
                below.wait()
        finally:
            self._below_cap = None

    def _accept_failed(self, exc: Exception, delay: float) -> float:
        """Decide what to do after accept() raised: the delay slept, or -1 to stop."""
        code = exc.errno if isinstance(exc, OSError) else None
        if code in _RETRY_AT_ONCE:
            logger.debug("accept on %s: %s; retrying", self._host, exc)
            return delay
        if code in _FATAL:
            self._give_up(exc)
            return -1.0
        # EMFILE, ENFILE, ENOBUFS, ENOMEM (the process or system is out of something,
        # so retrying at once would spin), or an error we do not know (a listener's own
        # accept may raise anything): survive it, but slowly, as gevent's StreamServer does.
        delay = next_backoff_delay(delay)
        logger.warning(
            "accept on %s failed: %s; retrying in %.2f s",
            self._host,
            exc,
            delay,
            exc_info=code is None,
        )
        self._clock.sleep(delay)
        return delay

    def _give_up(self, exc: BaseException) -> None:
        logger.error("accept on %s failed for good: %r; stopping", self._host, exc)
        self._fatal_error = exc
        # Stop from another greenlet: stop_listening kills this one.
        gevent.spawn(self.stop_listening)

    # -- one connection --------------------------------------------------------

    def _run_handler(
        self,
        stream: Any,
        address: Any,
        family: int | None,
        prepare: Callable[[Any, Any], tuple[Any, Any]] | None,
    ) -> None:
        current = gevent.getcurrent()
        # Until the handler has the stream, the port closes it on every way out.
        # Then a handler with closes_stream closes it itself; otherwise the port
        # closes what the handler got: a stream from prepare() (a TLSStream, a
        # ProxiedStream) owns the accepted one and closes it too, once.
        owned_by_handler = False
        peer: str | None = None  # counted against max_per_peer
        try:
            if family == _AF_INET and type(address) is tuple:  # the common case, inline
                address = IPv4Address(address[0], address[1])
            else:
                address = as_address(family, address, stream)
            if prepare is not None:
                self._unprepared.add(current)
                try:
                    prepared, address = prepare(stream, address)
                except Exception as exc:
                    if _timed_out(exc):
                        self._events["handshake_timeouts"] += 1
                    log_prepare_failure(address, exc)
                    return
                finally:
                    self._unprepared.discard(current)
                stream = self._handlers[current] = prepared
                if isinstance(address, SOCKADDR_TYPES):  # prepare() gave a raw one
                    address = as_address(family, address, stream)
            if self.limits.max_per_peer is not None:
                admitted, peer = self._admit_peer(address)
                if not admitted:
                    return
            owned_by_handler = self._handler_closes
            self.handler(stream, address)
        except gevent.GreenletExit:
            pass
        except IdleTimeoutError:
            pass  # the sweep closed it and said so
        except _PEER_GONE as exc:
            # The peer reset or vanished mid-stream: routine on a network, not a bug
            # in the handler, and a traceback per client would let clients flood the log.
            logger.info("connection from %s ended by the peer: %s", address, exc)
        except Exception:
            logger.exception("handler %r failed on the connection from %s", self.handler, address)
        finally:
            self._handlers.pop(current, None)
            if peer is not None:
                self._release_peer(peer)
            if self._below_cap is not None:
                self._below_cap.set()
            if not owned_by_handler:
                stream.close()

    # -- limits -----------------------------------------------------------------

    def _admit_peer(self, address: Any) -> tuple[bool, str | None]:
        """Check ``max_per_peer``: whether to serve, and the key counted (to release).

        A refusal is counted and logged here. Peers without an IP address (UNIX
        sockets) are served and not counted.
        """
        key = peer_key(address)
        if key is None:
            return True, None
        open_now = self._per_peer.get(key, 0)
        limit = self.limits.max_per_peer
        if limit is not None and open_now >= limit:
            self.count_event(
                "refused_by_limit",
                address,
                f"{open_now} connections from {key} already open (max_per_peer {limit})",
            )
            return False, None
        self._per_peer[key] = open_now + 1
        return True, key

    def _release_peer(self, key: str) -> None:
        left = self._per_peer[key] - 1
        if left:
            self._per_peer[key] = left
        else:
            del self._per_peer[key]

    def _sweep_idle(self, idle_timeout: float) -> None:
        """Close connections idle for ``idle_timeout``; one greenlet per port.

        Sleeps until the soonest connection could be idle for too long; each wake
        asks the kernel (one ``getsockopt``) for every open connection.
        """
        delay = idle_timeout
        closed: set[Any] = set()  # told to close, maybe not gone yet: told once
        while True:
            self._clock.sleep(delay)
            soonest = idle_timeout
            try:
                closed &= self._handlers.keys()
                for greenlet, stream in list(self._handlers.items()):
                    if greenlet in self._unprepared or greenlet in closed:
                        continue  # in its handshake (its own timeout governs), or told
                    idle = stream_idle_seconds(stream)
                    if idle is None:
                        continue
                    if idle >= idle_timeout:
                        closed.add(greenlet)
                        self._close_idle(greenlet, stream, idle, idle_timeout)
                    else:
                        soonest = min(soonest, idle_timeout - idle)
            except Exception:
                # A bug here must not end idle enforcement for the port's lifetime.
                logger.exception("idle sweep on %s failed; sweeping on", self._host)
            delay = next_sweep_delay(idle_timeout, soonest)

    def _close_idle(self, greenlet: Any, stream: Any, idle: float, idle_timeout: float) -> None:
        error = IdleTimeoutError(
            f"no data received or sent for {idle:.1f} s (idle_timeout {idle_timeout:g} s)",
            idle_timeout=idle_timeout,
        )
        peer = _peer_of(stream)
        self.count_event("closed_idle", peer, str(error))
        # A handler that runs a transport ends it the transport's way (connectionLost
        # gets the error); any other handler gets it raised where it waits.
        close_idle = getattr(self.handler, "close_idle", None)
        if close_idle is not None and close_idle(greenlet, error):
            return
        greenlet.kill(error, block=False)

    # -- stopping --------------------------------------------------------------

    def _close_listener(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()  # before the listener's fd is freed for reuse
        try:
            self.listener.close()
        except OSError as exc:
            logger.debug("closing the listener on %s: %r", self._host, exc)
        # Without waiting: a wait would let accepted handlers start that an abort
        # (timeout=0) should stop before they run. stop_listening joins it later.
        accepting = self._accept_greenlet
        if accepting is not None and accepting is not gevent.getcurrent():
            accepting.kill(block=False)
        self._stop_sweeping()

    def _abort_handlers(self, current: Any) -> None:
        remaining = [g for g in self._handlers if g is not current]
        if not remaining:
            return
        for greenlet in remaining:
            # One by one: Greenlet.kill stops a handler that has not started yet
            # from ever starting (gevent.killall would let it start first).
            greenlet.kill(block=False)
        gevent.joinall(remaining, timeout=KILL_GRACE)
        # Handlers killed before they started never ran their finally block, and a
        # handler that swallows GreenletExit may still be running: close for them.
        for greenlet in remaining:
            stream = self._handlers.pop(greenlet, None)
            if stream is not None:
                stream.close()

    def _stop_sweeping(self) -> None:
        sweeper = self._sweeper
        if sweeper is not None and sweeper is not gevent.getcurrent():
            sweeper.kill(block=False)
