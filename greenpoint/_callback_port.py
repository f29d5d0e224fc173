"""``listen()`` with loop dispatch: the port's bookkeeping keyed by connection.

A :class:`CallbackPort` is a :class:`~greenpoint._serve.ListeningPort` whose
accepted plain gevent sockets (TCP, UNIX) become
:class:`~greenpoint._callback_transport.CallbackTransport` connections instead
of handler greenlets. The port's accept loop hands each accepted socket to its
``pool`` (:class:`_Starter` here, which has the ``spawn`` signature the accept
loop calls); the connection object is what the port then keeps in its table,
counts against ``max_connections``, sweeps for idleness, drains (``join`` /
``rawlink``) and kills (``kill``), exactly where it would keep a greenlet.

Connections that are not plain gevent sockets keep the greenlet
:class:`~greenpoint._transport.Transport`, through the usual
``ProtocolHandler``: TLS and PROXY-header listeners (their ``prepare()`` runs in
the connection's greenlet), UNIX sockets re-made as ``StampedSocket`` for an
``idle_timeout``, memory and standard-I/O streams.
"""

from __future__ import annotations

import logging
import socket
from ipaddress import ip_address
from typing import Any

import gevent
from gevent import socket as gsocket

from greenpoint._accept import AcceptWatcher, can_watch
from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress, as_address, from_sockaddr
from greenpoint._callback_transport import RAW_SOCKET, CallbackTransport
from greenpoint._connect import ProtocolHandler
from greenpoint._dispatch import dispatcher
from greenpoint._reactor_time import current_owner
from greenpoint._serve import ListeningPort

__all__ = [
    "DEFAULT_DISPATCH",
    "DISPATCH_MODES",
    "CallbackPort",
    "LoopProtocolHandler",
    "check_dispatch",
]

log = logging.getLogger("greenpoint")

# listen(factory, dispatch=...): where protocol callbacks run.
DISPATCH_MODES = ("loop", "greenlet")
# What dispatch=None means.
DEFAULT_DISPATCH = "loop"


def check_dispatch(dispatch: str | None) -> str:
    """``dispatch`` checked, ``None`` made the default; ``ValueError`` names the choices."""
    if dispatch is None:
        return DEFAULT_DISPATCH
    if dispatch not in DISPATCH_MODES:
        raise ValueError(
            f"dispatch must be 'loop' (protocol callbacks run from the event loop, "
            f"one greenlet for all connections) or 'greenlet' (a greenlet per "
            f"connection), not {dispatch!r}"
        )
    return dispatch


_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class _Refused:
    """What the starter gives the accept loop for a connection it did not keep."""

    dead = True


_REFUSED = _Refused()


class LoopProtocolHandler(ProtocolHandler):
    """A ``ProtocolHandler`` that also ends loop-dispatched connections for idleness."""

    def close_idle(self, greenlet: Any, error: BaseException) -> bool:
        if not isinstance(greenlet, gevent.Greenlet):  # a loop-dispatched connection
            greenlet._abort_with(error)
            return True
        return super().close_idle(greenlet, error)


def connection_host(listening: Any) -> Any:
    """The local address of every connection accepted on a listener bound to
    ``listening``, or ``None`` when connections differ (a wildcard address).

    A socket accepted on an IP listener bound to one address has that address
    and port; one accepted on a UNIX listener has the listener's name (unix(7)).
    Knowing it spares a ``getsockname()`` per connection at close (``getHost()``
    after the close).
    """
    if isinstance(listening, (IPv4Address, IPv6Address)):
        try:
            unspecified = ip_address(listening.host).is_unspecified
        except ValueError:  # not an address ipaddress reads: ask each connection
            return None
        return None if unspecified else listening
    if isinstance(listening, UNIXAddress) and listening.name:
        return listening
    return None


class _Starter:
    """The accept loop's ``pool``: starts each connection, loop-dispatched if it can."""

    def __init__(self, port: CallbackPort, factory: Any) -> None:
        self._port = port
        self._factory = factory
        self._dispatcher = dispatcher()
        self._host = connection_host(port.get_host())

    def spawn(self, run: Any, stream: Any, address: Any, family: int | None, prepare: Any) -> Any:
        if prepare is not None or type(stream) is not gsocket.socket:
            return gevent.spawn(run, stream, address, family, prepare)
        return self.start(stream._sock, address, family, stream)

    def start(self, sock: Any, address: Any, family: int | None, handle: Any = None) -> Any:
        """A loop-dispatched connection on the raw socket ``sock`` (``handle``:
        the gevent socket around it, if there is one), or ``_REFUSED`` (then
        closed). Runs in the hub or the accept greenlet: it only posts."""
        port = self._port
        try:
            if handle is None:  # fresh from accept: blocking until told otherwise
                sock.setblocking(False)
            if family in _IP_FAMILIES:  # as_address's answer, without its checks
                address = from_sockaddr(family, address)
            else:
                address = as_address(family, address, sock)
            peer = None
            if port.limits.max_per_peer is not None:
                admitted, peer = port._admit_peer(address)
                if not admitted:
                    (sock if handle is None else handle).close()
                    return _REFUSED
            connection = CallbackTransport(
                sock,
                address,
                self._dispatcher,
                self._factory,
                port._connection_ended,
                self._host,
                handle,
            )
            if peer is not None:
                port._peer_keys[connection] = peer
            connection.begin()
        except Exception:
            # The accept loop must go on: one connection failed to start.
            log.exception("starting the connection from %s failed", address)
            (sock if handle is None else handle).close()
            return _REFUSED
        return connection


class CallbackPort(ListeningPort):
    """A listening port whose plain-socket connections are loop-dispatched."""

    @classmethod
    def start_for(cls, listener: Any, factory: Any, on_stop: Any, limits: Any) -> CallbackPort:
        """Start serving ``listener`` with ``factory``'s protocols (as ``start``)."""
        port = cls(listener, LoopProtocolHandler(factory), None, on_stop, limits)
        port._peer_keys = {}
        port.pool = _Starter(port, factory)
        port._accept_greenlet = gevent.spawn(port._accept_loop)
        if port.limits.idle_timeout is not None:
            port._sweeper = gevent.spawn(port._sweep_idle, port.limits.idle_timeout)
        return port

    _peer_keys: dict[Any, str]

    def _accept_loop(self) -> None:
        listener = self.listener
        family = getattr(listener, "family", None)
        if (
            getattr(listener, "accept_unprepared", None) is not None
            or getattr(listener, "one_connection", False)
            or not can_watch(listener)
            # UNIX sockets on a port with idle_timeout are re-made (StampedSocket)
            # and keep a greenlet each: the greenlet accept loop does that.
            or (self.limits.idle_timeout is not None and family == socket.AF_UNIX)
        ):
            super()._accept_loop()
            return
        # The hub accepts into raw sockets: no gevent socket per connection.
        self._accept_from_hub(AcceptWatcher(listener, RAW_SOCKET), family)

    def _accept_from_hub(self, acceptor: AcceptWatcher, family: int | None) -> None:
        """Accept in the hub (ListeningPort._run_acceptor) and start each
        connection there: no greenlet, no switch per connection."""
        handlers = self._handlers
        start = self.pool.start
        cap = self.limits.max_connections

        def on_accept(sock: Any, address: Any) -> bool:
            # Runs in the hub: nothing here may block (start only posts).
            if self.closing:  # a listener that still accepted after close()
                sock.close()
                return False
            connection = start(sock, address, family)
            if connection is not _REFUSED:
                handlers[connection] = sock
            self._accepted += 1
            return cap is None or len(handlers) < cap

        self._run_acceptor(acceptor, on_accept)

    def _connection_ended(self, connection: Any) -> None:
        """A loop-dispatched connection closed: what a handler greenlet's end does."""
        self._handlers.pop(connection, None)
        if self._peer_keys:  # max_per_peer counts this connection
            peer = self._peer_keys.pop(connection, None)
            if peer is not None:
                self._release_peer(peer)
        if self._below_cap is not None:
            self._below_cap.set()

    def _caller(self) -> Any:
        # Inside a loop-dispatched connection's protocol code, "the caller's own
        # connection" is that connection, not the shared dispatcher greenlet.
        owner = current_owner.get()
        if owner is not None and owner in self._handlers:
            return owner
        return gevent.getcurrent()
