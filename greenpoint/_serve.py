"""The accept loop: one greenlet accepts, one greenlet per connection runs the handler.

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
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from greenpoint._accept import accept_function
from greenpoint._address import from_sockaddr
from greenpoint.errors import GreenpointError, ProxyHeaderError

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

# What a socket's accept() returns as the peer (an IP tuple, a UNIX path): made
# into a greenpoint address. A tuple of types, not ``tuple | str | bytes``, which
# would build a union object on every connection.
_SOCKADDR_TYPES = (tuple, str, bytes)

# The listener itself is gone or was never listening: nothing to retry.
_FATAL = frozenset({errno.EBADF, errno.EINVAL, errno.ENOTSOCK})


def next_backoff_delay(previous: float) -> float:
    """The delay before the next accept() after a resource-exhaustion error.

    ``previous`` is the last delay (0 after a success); delays double from
    :data:`MIN_ACCEPT_DELAY` up to :data:`MAX_ACCEPT_DELAY`.
    """
    return min(MAX_ACCEPT_DELAY, max(MIN_ACCEPT_DELAY, previous * 2))


def _as_address(family: int | None, address: Any, stream: Any = None) -> Any:
    """A greenpoint address for what a listener's accept returned.

    Addresses that are already greenpoint addresses (``PipeAddress("stdio")``, a
    PROXY header's client) pass through. A raw sockaddr from a wrapping listener
    without ``family`` (``haproxy:``) is read with the accepted socket's family.
    """
    if isinstance(address, _SOCKADDR_TYPES):
        if family is None:
            family = getattr(stream, "family", None)
        if family is not None:
            try:
                return from_sockaddr(family, address)
            except ValueError:
                pass  # a family we have no address type for: keep what we got
    return address


def _log_prepare_failure(address: Any, exc: Exception) -> None:
    """Log a connection that failed before its handler, once and at the right level."""
    if isinstance(exc, ProxyHeaderError):
        # haproxy: already logged it (a WARNING naming the proxy and the reason).
        logger.debug("connection from %s refused before the handler: %s", address, exc)
    elif isinstance(exc, GreenpointError | OSError):
        # One client's failure (a bad handshake, a reset): no traceback needed.
        logger.info("connection from %s failed before the handler: %r", address, exc)
    else:  # a bug in the listener's prepare()
        logger.error("preparing the connection from %s failed", address, exc_info=exc)


class ListeningPort:
    """A listener being served: an accept loop and one greenlet per connection.

    Create it with :meth:`start` (``ServerEndpoint.serve()`` does). Handlers may read
    :attr:`closing`, which becomes true as soon as a stop begins.

    As a context manager, leaving the block calls ``stop_listening(timeout=0)``: the
    listener closes and handlers still running are killed at once, like a trio
    nursery being cancelled. Call ``stop_listening(timeout)`` inside the block for a
    graceful drain.
    """

    # The one place the accept loop waits on time; tests replace it.
    _sleep: Callable[[float], Any] = staticmethod(gevent.sleep)

    def __init__(
        self,
        listener: Any,
        handler: Callable[[Any, Any], Any],
        pool: Any = None,
        on_stop: Callable[[], Any] | None = None,
    ) -> None:
        self.listener = listener
        self.handler = handler
        # A handler that closes its stream on every way out (ProtocolHandler) saves
        # the second close() per connection.
        self._handler_closes = bool(getattr(handler, "closes_stream", False))
        self.pool = pool
        self.closing = False
        self._on_stop = on_stop
        self._host = self._bound_address(listener)
        # greenlet -> the stream it serves, so that stop can close streams of
        # handlers that were killed before they ever ran.
        self._handlers: dict[Any, Any] = {}
        self._accept_greenlet: Any = None  # set by start()
        self._stop_started = False
        self._stopped = Event()
        self._fatal_error: BaseException | None = None

    @classmethod
    def start(
        cls,
        listener: Any,
        handler: Callable[[Any, Any], Any],
        pool: Any = None,
        on_stop: Callable[[], Any] | None = None,
    ) -> ListeningPort:
        """Start serving ``listener``: ``handler(stream, address)`` per connection.

        Returns at once; accepting runs in its own greenlet. ``pool`` (a
        ``gevent.pool.Pool``) caps concurrent handlers: accepting waits for a free
        slot. ``on_stop`` runs once, after everything is closed.
        """
        port = cls(listener, handler, pool, on_stop)
        port._accept_greenlet = gevent.spawn(port._accept_loop)
        return port

    # -- what users call -------------------------------------------------------

    def get_host(self) -> Any:
        """The address the listener is bound to (the real port when 0 was asked)."""
        return self._host

    getHost = get_host

    @property
    def handler_count(self) -> int:
        """How many connections are being handled right now."""
        return len(self._handlers)

    def stop_listening(self, timeout: float | None = None) -> None:
        """Stop: refuse new connections, drain, then abort; blocks until all closed.

        The listener is closed first, so new clients are refused at once. Running
        handlers get ``timeout`` seconds to finish (``None``: as long as they need,
        ``0``: none); those still running are then killed and their streams closed.
        ``on_stop`` runs last. A second call waits for the first to finish.

        Called from inside a handler, that handler's own connection is left to end
        when the handler returns.
        """
        current = gevent.getcurrent()
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
        accept = accept_unprepared or accept_function(listener)
        prepare = getattr(listener, "prepare", None) if accept_unprepared else None
        family = getattr(listener, "family", None)
        pool = self.pool
        wait_for_slot = getattr(pool, "wait_available", None)
        spawn = pool.spawn if pool is not None else gevent.spawn
        handlers = self._handlers
        run = self._run_handler
        delay = 0.0
        while True:
            if wait_for_slot is not None:
                wait_for_slot()
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
            try:
                greenlet = spawn(run, stream, address, family, prepare)
            except BaseException:
                stream.close()
                raise
            # A full shared pool can block spawn() long enough for the handler to
            # finish; only a live handler is remembered.
            if not greenlet.dead:
                handlers[greenlet] = stream

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
        self._sleep(delay)
        return delay

    def _give_up(self, exc: BaseException) -> None:
        logger.error("accept on %s failed for good: %r; stopping", self._host, exc)
        self._fatal_error = exc
        # Stop from another greenlet: stop_listening kills this one.
        gevent.spawn(self.stop_listening)

    # -- one connection --------------------------------------------------------

    def _run_handler(
        self, stream: Any, address: Any, family: int | None, prepare: Callable | None
    ) -> None:
        current = gevent.getcurrent()
        # Until the handler has the stream, the port closes it on every way out.
        # Then a handler with closes_stream closes it itself; otherwise the port
        # closes what the handler got: a stream from prepare() (a TLSStream, a
        # ProxiedStream) owns the accepted one and closes it too, once.
        owned_by_handler = False
        try:
            address = _as_address(family, address, stream)
            if prepare is not None:
                try:
                    prepared, address = prepare(stream, address)
                except Exception as exc:
                    _log_prepare_failure(address, exc)
                    return
                stream = self._handlers[current] = prepared
                if isinstance(address, _SOCKADDR_TYPES):  # prepare() gave a raw one
                    address = _as_address(family, address, stream)
            owned_by_handler = self._handler_closes
            self.handler(stream, address)
        except gevent.GreenletExit:
            pass
        except _PEER_GONE as exc:
            # The peer reset or vanished mid-stream: routine on a network, not a bug
            # in the handler, and a traceback per client would let clients flood the log.
            logger.info("connection from %s ended by the peer: %s", address, exc)
        except Exception:
            logger.exception("handler %r failed on the connection from %s", self.handler, address)
        finally:
            self._handlers.pop(current, None)
            if not owned_by_handler:
                stream.close()

    # -- stopping --------------------------------------------------------------

    def _close_listener(self) -> None:
        try:
            self.listener.close()
        except OSError as exc:
            logger.debug("closing the listener on %s: %r", self._host, exc)
        # Without waiting: a wait would let accepted handlers start that an abort
        # (timeout=0) should stop before they run. stop_listening joins it later.
        accepting = self._accept_greenlet
        if accepting is not None and accepting is not gevent.getcurrent():
            accepting.kill(block=False)

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

    @staticmethod
    def _bound_address(listener: Any) -> Any:
        get_host = getattr(listener, "get_host", None)
        if get_host is not None:
            return get_host()
        return from_sockaddr(listener.family, listener.getsockname())
