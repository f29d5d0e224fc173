"""Twisted's protocol classes: ``Protocol``, ``Factory`` and ``ClientFactory``.

These are the interface that ported Twisted code implements, so the callbacks keep
Twisted's names and call order. They hold no I/O: the transport
(:mod:`greenpoint._transport`) drives them from the connection's greenlet.

Reasons given to ``connectionLost`` are exceptions (``ConnectionDone`` for a clean
close, ``ConnectionLost`` otherwise), not Twisted ``Failure`` objects.
"""

from __future__ import annotations

import logging
from typing import Any

from greenpoint.errors import ConnectionDone

__all__ = ["BaseProtocol", "ClientFactory", "Factory", "Protocol"]

log = logging.getLogger("greenpoint")

# Twisted's default argument for connectionLost, kept so that ported code calling
# ``connectionLost()`` with no reason still works.
CONNECTION_DONE = ConnectionDone("connection was closed cleanly")


class BaseProtocol:
    """What every protocol has: a transport, a ``connected`` flag, ``connectionMade``."""

    connected = 0
    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call :meth:`connectionMade`."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """Called once the connection is ready; ``self.transport`` is set."""


class Protocol(BaseProtocol):
    """A stream protocol: override ``dataReceived`` and ``connectionLost``.

    Optional callbacks, looked up by name as Twisted looks up its interfaces:
    ``readConnectionLost()`` (the peer half-closed; without it a half-close ends the
    connection) and ``writeConnectionLost()`` (our ``loseWriteConnection`` finished).
    """

    factory: Any = None

    def logPrefix(self) -> str:
        """The name used in log messages about this protocol."""
        return type(self).__name__

    def dataReceived(self, data: bytes) -> None:
        """Called with each chunk of bytes read; chunk boundaries mean nothing."""

    def connectionLost(self, reason: BaseException = CONNECTION_DONE) -> None:
        """Called exactly once when the connection ends.

        ``reason`` is :class:`~greenpoint.ConnectionDone` after a clean close and
        :class:`~greenpoint.ConnectionLost` (or the exception a callback raised)
        otherwise.
        """


class Factory:
    """Builds a protocol per connection; counts how many endpoints use it.

    ``doStart``/``doStop`` are called by ``listen()`` (once per listening port) and
    ``connect()`` (once per connection attempt); ``startFactory`` runs when the count
    leaves zero and ``stopFactory`` when it returns to zero.
    """

    protocol: Any = None
    numPorts = 0
    noisy = True

    @classmethod
    def forProtocol(cls, protocol: Any, *args: Any, **kwargs: Any) -> Factory:
        """A factory of this class whose ``protocol`` is ``protocol``."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        return type(self).__name__

    def doStart(self) -> None:
        """Count one more user; call :meth:`startFactory` for the first."""
        if not self.numPorts:
            if self.noisy:
                log.debug("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count one user less; call :meth:`stopFactory` after the last."""
        if self.numPorts == 0:
            # More stops than starts: a bug in the caller, but never go negative.
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.debug("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Called before the first connection or port uses this factory."""

    def stopFactory(self) -> None:
        """Called after the last connection or port stopped using this factory."""

    def buildProtocol(self, addr: Any) -> Any:
        """Make a protocol for a connection from/to ``addr``; ``None`` refuses it."""
        protocol = self.protocol()
        protocol.factory = self
        return protocol


class ClientFactory(Factory):
    """A factory for client connections, with Twisted's client callbacks.

    ``connect()`` calls ``startedConnecting`` itself; ``clientConnectionFailed`` and
    ``clientConnectionLost`` are called by reconnecting policies
    (``ReconnectingClient``), as Twisted's connectors do.
    """

    def startedConnecting(self, connector: Any) -> None:
        """Called when a connection attempt starts."""

    def clientConnectionFailed(self, connector: Any, reason: BaseException) -> None:
        """Called when a connection attempt failed."""

    def clientConnectionLost(self, connector: Any, reason: BaseException) -> None:
        """Called when an established connection ended."""
