"""Endpoints meet factories: ``connect(factory)``, ``listen(factory)``, ``connect_protocol``.

A client connection: ``factory.doStart()``, ``startedConnecting(connector)``, the
endpoint's ``open()``, ``buildProtocol(peer address)``, ``makeConnection`` in the
caller's greenlet (so ``connectionMade`` has run when ``connect()`` returns), then a
reader greenlet; ``factory.doStop()`` after ``connectionLost`` (or after a failure).
A failed attempt calls nothing else on the factory: ``clientConnectionFailed`` and
``clientConnectionLost`` belong to reconnecting policies, as with Twisted endpoints.

A server connection runs in the handler greenlet that the listening port gives it.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from greenpoint._address import peer_address
from greenpoint._checks import check_factory, check_timeout
from greenpoint._protocol import Factory
from greenpoint._transport import Transport
from greenpoint.errors import ConnectCancelledError, NoProtocolError

__all__ = ["Connector", "connect_factory", "connect_protocol", "listen_factory", "set_factory"]

log = logging.getLogger("greenpoint")


class _StopConnecting(gevent.GreenletExit):  # type: ignore[misc]  # gevent is untyped (Any)
    """Thrown into a greenlet blocked in ``open()`` by ``Connector.stopConnecting``.

    A ``GreenletExit`` so that every endpoint treats it as cancellation: close what
    it opened and let it through unchanged.
    """


class Connector:
    """The handle ``startedConnecting(connector)`` gets for one connection attempt.

    ``state`` is ``"connecting"``, ``"connected"`` or ``"disconnected"``, as in
    Twisted's ``IConnector``.
    """

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        self.state = "connecting"
        self.transport: Transport | None = None
        self._greenlet = gevent.getcurrent()
        self._stop_requested = False

    def __repr__(self) -> str:
        return f"<Connector {self.endpoint} {self.state}>"

    def getDestination(self) -> Any:
        """What is being connected to: the endpoint (its ``str()`` is a description)."""
        return self.endpoint

    def stopConnecting(self) -> None:
        """Give up the attempt; ``connect()`` raises ``ConnectCancelledError``."""
        if self.state != "connecting":
            raise RuntimeError(f"{self!r} is not connecting")
        self._stop_requested = True
        if gevent.getcurrent() is not self._greenlet:
            gevent.get_hub().loop.run_callback(self._deliver_stop)

    def _deliver_stop(self) -> None:
        # Checked again in the hub: once open() has returned, the attempt is over and
        # the exception must not land in whatever the caller does next.
        if self.state == "connecting":
            self._greenlet.throw(_StopConnecting)

    def disconnect(self) -> None:
        """Stop connecting, or close the connection once made."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()


def connect_factory(endpoint: Any, factory: Any, timeout: float | None = None) -> Any:
    """Connect ``endpoint``, start a protocol from ``factory`` on it and return it.

    Blocks the calling greenlet until the stream is open and ``connectionMade`` has
    run. The connection then runs in its own reader greenlet.

    Raises:
        TypeError, ValueError: ``factory`` is not a factory instance, or ``timeout``
            is not ``None`` or a finite number of seconds (nothing is started).
        ConnectError: from the endpoint; ``ConnectCancelledError`` if
            ``connector.stopConnecting()`` was called; ``NoProtocolError`` if
            ``buildProtocol`` returned ``None`` (the stream is closed).
        Exception: whatever ``connectionMade`` raised (the connection is closed and
            ``connectionLost`` got the error first).
    """
    check_factory(factory, "connect")
    check_timeout(timeout)
    connector = Connector(endpoint)
    factory.doStart()

    def stopped() -> None:
        connector.state = "disconnected"
        factory.doStop()

    try:
        started = getattr(factory, "startedConnecting", None)
        if started is not None:
            started(connector)
        if connector._stop_requested:
            raise _StopConnecting
        stream = endpoint.open(timeout)
        connector.state = "connected"
    except _StopConnecting as exc:
        stopped()
        raise ConnectCancelledError(
            f"connecting to {endpoint} was stopped", address=endpoint
        ) from exc
    except BaseException:
        stopped()
        raise

    try:
        address = peer_address(stream)
        protocol = factory.buildProtocol(address)
        if protocol is None:
            raise NoProtocolError(
                f"{factory!r}.buildProtocol({address}) returned None; connection closed",
                address=address,
            )
        set_factory(protocol, factory)
    except BaseException:
        stream.close()
        stopped()
        raise

    transport = Transport(stream, protocol, peer=address, on_close=stopped)
    connector.transport = transport
    transport.start()
    transport.spawn()
    return protocol


def connect_protocol(endpoint: Any, protocol: Any, timeout: float | None = None) -> Any:
    """Connect ``endpoint`` and run the already-built ``protocol`` on it; return it.

    Blocks the calling greenlet until ``connectionMade`` has run (Twisted's
    ``connectProtocol`` returns a Deferred; this returns the protocol).
    """
    return endpoint.connect(_OneShotFactory(protocol), timeout)


class _OneShotFactory(Factory):
    noisy = False

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def __repr__(self) -> str:
        return f"<connect_protocol factory for {self._protocol!r}>"

    def buildProtocol(self, addr: Any) -> Any:
        return self._protocol


def listen_factory(
    endpoint: Any, factory: Any, limits: Any = None, dispatch: str | None = None
) -> Any:
    """Bind ``endpoint`` and give each accepted connection a protocol from ``factory``.

    Returns the bound ``ListeningPort``. ``factory.doStart()`` runs once the endpoint
    is bound (nothing is called on the factory if binding fails) and
    ``factory.doStop()`` when the port stops. ``limits`` is a
    ``ConnectionLimits`` for the port. ``dispatch`` is ``"loop"`` or ``"greenlet"``
    (``None``: the default, see greenpoint._callback_port).
    """
    from greenpoint import _callback_port
    from greenpoint._serve import ListeningPort

    check_factory(factory, "listen")
    dispatch = _callback_port.check_dispatch(dispatch)
    listener = endpoint.bind()
    factory.doStart()
    try:
        port: ListeningPort
        if dispatch == "loop":
            port = _callback_port.CallbackPort.start_for(
                listener, factory, on_stop=factory.doStop, limits=limits
            )
        else:
            port = ListeningPort.start(
                listener, ProtocolHandler(factory), on_stop=factory.doStop, limits=limits
            )
        port.endpoint = endpoint
        return port
    except BaseException:
        factory.doStop()
        listener.close()
        raise


class ProtocolHandler:
    """``handler(stream, address)`` that runs one connection of ``factory``'s protocol.

    It returns when the connection has ended (``connectionLost`` has run). The
    stream is closed on every way out, so the listening port need not close it
    again (``closes_stream``).
    """

    closes_stream = True

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        # handler greenlet -> its transport, so that the port can end an idle one
        self._transports: dict[Any, Transport] = {}

    def __repr__(self) -> str:
        return f"<ProtocolHandler {self.factory!r}>"

    def __call__(self, stream: Any, address: Any) -> None:
        try:
            self._run(stream, address)
        except BaseException:
            stream.close()  # killed before the transport took the stream over
            raise

    def close_idle(self, greenlet: Any, error: BaseException) -> bool:
        """End ``greenlet``'s connection with ``error`` as the reason; False if none."""
        transport = self._transports.get(greenlet)
        if transport is None:
            return False
        transport._abort_with(error)
        return True

    def _run(self, stream: Any, address: Any) -> None:
        protocol = build_protocol(self.factory, address)
        if protocol is None:
            stream.close()
            return
        # The transport closes the stream when the connection ends, however it ends.
        transport = Transport(stream, protocol, peer=address)
        current = gevent.getcurrent()
        self._transports[current] = transport
        try:
            try:
                transport.start()
            except Exception:
                log.exception("Unhandled error in %s.connectionMade", type(protocol).__name__)
                return
            transport.run()
        finally:
            self._transports.pop(current, None)


def build_protocol(factory: Any, address: Any) -> Any:
    """``factory.buildProtocol(address)`` for a server connection, its factory set;
    ``None`` (said in the log) when it failed or refused: the caller closes."""
    try:
        protocol = factory.buildProtocol(address)
    except Exception:
        log.exception("%r.buildProtocol(%s) failed; connection closed", factory, address)
        return None
    if protocol is None:
        log.debug("%r.buildProtocol(%s) returned None; connection closed", factory, address)
        return None
    set_factory(protocol, factory)
    return protocol


def set_factory(protocol: Any, factory: Any) -> None:
    """Set ``protocol.factory`` unless it has one, as Twisted's ``Factory.buildProtocol`` does.

    A custom ``buildProtocol`` may not set it; one that deliberately set another
    factory (a wrapper's) keeps it.
    """
    if getattr(protocol, "factory", None) is None:
        try:
            protocol.factory = factory
        except AttributeError:
            pass
