"""Shared pieces of the protocol-layer tests.

* :func:`tcp_server`, :func:`client_for`, :func:`raw_client`: loopback endpoints, the real
  TCP and UNIX ones.
* :class:`Recorder` and :class:`RecordingFactory`: a protocol and a factory that keep
  everything they are told, in order, for the test to check.
* :class:`BuildingFactory`: a server factory that keeps every protocol it built.
* :func:`echoed`: send on a plain socket and read as many bytes back.
* :func:`exchange`: the whole "listen, raw client, send, half-close, read everything,
  wait for the server side to close" round (:func:`_net_helpers.read_all` reads).
"""

from __future__ import annotations

import socket
from typing import Any

from _net_helpers import read_all
from _wait_helpers import wait_until
from gevent.event import Event

from greenpoint import ClientFactory, Factory, Protocol
from greenpoint.endpoints.tcp import TCP4ClientEndpoint, TCP4ServerEndpoint
from greenpoint.endpoints.unix import UNIXClientEndpoint, UNIXServerEndpoint

LOOPBACK = "127.0.0.1"


def tcp_server():
    """A TCP server endpoint on a free loopback port."""
    return TCP4ServerEndpoint(0, interface=LOOPBACK)


def client_for(port, server_endpoint):
    """A client endpoint that reaches ``port`` (a listening port of ``server_endpoint``)."""
    if isinstance(server_endpoint, UNIXServerEndpoint):
        return UNIXClientEndpoint(server_endpoint.path)
    return TCP4ClientEndpoint(LOOPBACK, port.get_host().port)


def raw_client(port, server_endpoint):
    """A plain connected gevent socket to ``port``."""
    return client_for(port, server_endpoint).open(5)


class Recorder(Protocol):
    """Keeps what it received, every ``connectionLost`` reason, and its callbacks in order.

    ``log`` gets ``"connectionMade"`` and ``("connectionLost", reason type name)``; a
    :class:`RecordingFactory` shares its own log with the protocols it builds, so the
    factory's and the protocol's callbacks can be checked as one sequence.
    """

    def __init__(self, log: list[Any] | None = None) -> None:
        self.log: list[Any] = log if log is not None else []
        self.received = bytearray()
        self.reasons: list[BaseException] = []
        self.closed = Event()

    @property
    def reason(self) -> BaseException | None:
        """The last ``connectionLost`` reason, ``None`` before it ran."""
        return self.reasons[-1] if self.reasons else None

    @property
    def reason_types(self) -> list[type]:
        """The type of each ``connectionLost`` reason: ``[ConnectionDone]`` for a clean end."""
        return [type(reason) for reason in self.reasons]

    def connectionMade(self) -> None:
        self.log.append("connectionMade")

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: BaseException) -> None:
        self.log.append(("connectionLost", type(reason).__name__))
        self.reasons.append(reason)
        self.closed.set()


class RecordingFactory(ClientFactory):
    """Builds ``protocol`` (a :class:`Recorder` by default) and records every callback.

    ``log`` holds the callbacks in order, with the reason type name for the failed and
    lost ones, and the Recorders built write their own callbacks into it; ``built`` are
    the protocols built, each with the address it was built for as ``addr``;
    ``connectors`` are the connectors the client callbacks got.
    """

    def __init__(self, protocol: Any = Recorder) -> None:
        self.protocol = protocol
        self.log: list[Any] = []
        self.built: list[Any] = []
        self.connectors: list[Any] = []

    def doStart(self) -> None:
        self.log.append("doStart")
        super().doStart()

    def doStop(self) -> None:
        self.log.append("doStop")
        super().doStop()

    def startedConnecting(self, connector: Any) -> None:
        self.connectors.append(connector)
        self.log.append("startedConnecting")

    def buildProtocol(self, addr: Any) -> Any:
        self.log.append("buildProtocol")
        protocol = super().buildProtocol(addr)
        protocol.addr = addr
        if isinstance(protocol, Recorder):
            protocol.log = self.log
        self.built.append(protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: BaseException) -> None:
        self.connectors.append(connector)
        self.log.append(("clientConnectionFailed", type(reason).__name__))

    def clientConnectionLost(self, connector: Any, reason: BaseException) -> None:
        self.connectors.append(connector)
        self.log.append(("clientConnectionLost", type(reason).__name__))

    def one(self, timeout: float = 5.0) -> Any:
        """The first protocol built, once there is one."""
        wait_until(lambda: self.built, timeout, what="a connection to be made")
        return self.built[0]


class BuildingFactory(Factory):
    """A server factory of ``protocol`` that keeps every protocol it built (``built``)."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        protocol = super().buildProtocol(addr)
        self.built.append(protocol)
        return protocol


def echoed(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data`` on ``sock`` and read as many bytes back (an echo server's answer)."""
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        assert chunk, "the server closed"
        got += chunk
    return got


def exchange(
    server_endpoint,
    protocol: Any,
    send: bytes | list[bytes] = b"",
    *,
    half_close: bool = True,
    pause: float = 0.0,
    timeout: float = 5.0,
) -> tuple[bytes, Any]:
    """One connection to a server of ``protocol``, from a raw client; (bytes read, server protocol).

    The server listens on ``server_endpoint`` with a :class:`RecordingFactory` of
    ``protocol``. The client sends ``send`` (a list: one piece at a time, each received by
    the server, which must then be a :class:`Recorder`, before the next is sent),
    half-closes unless ``half_close`` is false, and reads to EOF or a reset (``pause``:
    see :func:`read_all`). It returns once the server side has run ``connectionLost``.
    """
    server = RecordingFactory(protocol)
    pieces = [send] if isinstance(send, bytes) else send
    with server_endpoint.listen(server) as port:
        sock = raw_client(port, server_endpoint)
        try:
            sent = 0
            for piece in pieces:
                if piece:
                    sock.sendall(piece)
                    sent += len(piece)
                if len(pieces) > 1:
                    wait_until(
                        lambda sent=sent: len(server.one().received) == sent,
                        timeout,
                        what=f"the server to receive {sent} bytes",
                    )
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            received = read_all(sock, pause, reset_ends=True)
        finally:
            sock.close()
        protocol = server.one()
        assert protocol.closed.wait(timeout), "the server side did not run connectionLost"
    return received, protocol
