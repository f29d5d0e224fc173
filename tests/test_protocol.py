"""Protocol, Factory, ClientFactory and the connect/listen glue, plus Twisted's own classes."""

from __future__ import annotations

import dataclasses
import socket

import gevent
import pytest
from _dispatch_helpers import dispatch_mode  # noqa: F401 - runs each test in both modes
from _protocol_helpers import (
    Recorder,
    RecordingFactory,
    client_for,
    raw_client,
    read_all,
    tcp_server,
)
from _wait_helpers import wait_until
from gevent.event import Event

import greenpoint
from greenpoint import (
    ClientEndpoint,
    ClientFactory,
    ConnectionDone,
    ConnectionLost,
    Factory,
    IPv4Address,
    Protocol,
    connect_protocol,
    connectProtocol,
)
from greenpoint.endpoints._base import ServerEndpoint
from greenpoint.endpoints.tcp import TCP4ClientEndpoint, TCP4ServerEndpoint
from greenpoint.endpoints.unix import UNIXServerEndpoint
from greenpoint.errors import ConnectCancelledError, ConnectError, NoProtocolError

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=["tcp", "unix"])
def server_endpoint(request, tmp_path):
    if request.param == "tcp":
        return tcp_server()
    return UNIXServerEndpoint(str(tmp_path / "p.sock"))


class CountingFactory(ClientFactory):
    protocol = Recorder

    def __init__(self):
        self.calls = []
        self.addresses = []

    def startFactory(self):
        self.calls.append("startFactory")

    def stopFactory(self):
        self.calls.append("stopFactory")

    def startedConnecting(self, connector):
        self.calls.append("startedConnecting")
        self.connector = connector

    def clientConnectionFailed(self, connector, reason):
        self.calls.append("clientConnectionFailed")

    def clientConnectionLost(self, connector, reason):
        self.calls.append("clientConnectionLost")

    def buildProtocol(self, addr):
        self.addresses.append(addr)
        return super().buildProtocol(addr)


# -- the classes on their own ---------------------------------------------------------------


def test_for_protocol_builds_that_protocol_with_its_factory_set():
    factory = Factory.forProtocol(Recorder)
    protocol = factory.buildProtocol(IPv4Address("127.0.0.1", 1))
    assert isinstance(protocol, Recorder)
    assert protocol.factory is factory


def test_for_protocol_passes_constructor_arguments():
    class Named(Factory):
        def __init__(self, name):
            self.name = name

    factory = Named.forProtocol(Recorder, "x")
    assert factory.name == "x" and factory.protocol is Recorder


def test_do_start_and_do_stop_count_users_and_start_and_stop_once():
    factory = CountingFactory()
    factory.doStart()
    factory.doStart()
    factory.doStop()
    assert factory.calls == ["startFactory"]
    factory.doStop()
    assert factory.calls == ["startFactory", "stopFactory"]
    factory.doStop()  # one stop too many never goes negative nor stops twice
    assert factory.numPorts == 0
    assert factory.calls == ["startFactory", "stopFactory"]


def test_make_connection_sets_transport_and_connected_then_calls_connection_made():
    protocol = Recorder()
    transport = object()
    protocol.makeConnection(transport)
    assert protocol.transport is transport
    assert protocol.connected == 1
    assert protocol.log == ["connectionMade"]


def test_public_names_are_exported():
    for name in ["Protocol", "Factory", "ClientFactory", "connect_protocol", "connectProtocol"]:
        assert name in greenpoint.__all__
    assert greenpoint.connectProtocol is greenpoint.connect_protocol


# -- connect -----------------------------------------------------------------------------------


def test_connect_returns_the_protocol_after_connection_made(server_endpoint):
    server = Factory.forProtocol(Recorder)
    factory = CountingFactory()
    with server_endpoint.listen(server) as port:
        protocol = client_for(port, server_endpoint).connect(factory)
        assert protocol.log == ["connectionMade"]
        assert protocol.factory is factory
        assert protocol.transport.connected
        assert factory.addresses == [protocol.transport.getPeer()]
        assert factory.calls == ["startFactory", "startedConnecting"]
        assert factory.connector.state == "connected"
        assert factory.connector.getDestination() == client_for(port, server_endpoint)
        protocol.transport.loseConnection()
        assert protocol.closed.wait(5)
    assert protocol.log == ["connectionMade", ("connectionLost", "ConnectionDone")]
    # doStop after the connection ended; the reconnect callbacks are not ours to call.
    assert factory.calls == ["startFactory", "startedConnecting", "stopFactory"]
    assert factory.connector.state == "disconnected"


def test_data_flows_to_a_connected_protocol(server_endpoint):
    class Greeter(Protocol):
        def connectionMade(self):
            self.transport.write(b"hi " + str(self.transport.getPeer()).encode())
            self.transport.loseConnection()

    with server_endpoint.listen(Factory.forProtocol(Greeter)) as port:
        protocol = client_for(port, server_endpoint).connect(Factory.forProtocol(Recorder))
        assert protocol.closed.wait(5)
    assert protocol.received.startswith(b"hi ")
    assert protocol.log == ["connectionMade", ("connectionLost", "ConnectionDone")]


def test_connect_failure_raises_and_calls_only_do_stop():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    free_port = listener.getsockname()[1]
    listener.close()  # nothing listens there now: refused
    factory = CountingFactory()
    with pytest.raises(ConnectError):
        TCP4ClientEndpoint("127.0.0.1", free_port).connect(factory)
    assert factory.calls == ["startFactory", "startedConnecting", "stopFactory"]
    assert factory.connector.state == "disconnected"


def test_build_protocol_returning_none_raises_and_closes_the_socket(server_endpoint):
    class Refusing(Factory):
        def buildProtocol(self, addr):
            return None

    server = RecordingFactory()
    with server_endpoint.listen(server) as port:
        with pytest.raises(NoProtocolError, match="returned None"):
            client_for(port, server_endpoint).connect(Refusing())
        assert server.one().closed.wait(5)  # the client closed its socket
    assert server.one().reason_types == [ConnectionDone]


def test_connection_made_raising_in_connect_closes_and_reraises(server_endpoint):
    class BadStart(Recorder):
        def connectionMade(self):
            super().connectionMade()
            raise KeyError("no start")

    built = []

    class Keep(Factory):
        protocol = BadStart

        def buildProtocol(self, addr):
            built.append(super().buildProtocol(addr))
            return built[-1]

    server = RecordingFactory()
    factory = Keep()
    with server_endpoint.listen(server) as port:
        with pytest.raises(KeyError, match="no start"):
            client_for(port, server_endpoint).connect(factory)
        assert server.one().closed.wait(5)
    assert built[0].log == ["connectionMade", ("connectionLost", "KeyError")]
    assert factory.numPorts == 0


def test_stop_connecting_inside_started_connecting_cancels_before_opening():
    opened = []

    @dataclasses.dataclass
    class Recording(ClientEndpoint):
        def description_parts(self):
            return ("recording", (), {})

        def open(self, timeout=None):
            opened.append(timeout)
            raise AssertionError("open() must not run")

    class Cancelling(CountingFactory):
        def startedConnecting(self, connector):
            super().startedConnecting(connector)
            connector.stopConnecting()

    factory = Cancelling()
    with pytest.raises(ConnectCancelledError):
        Recording().connect(factory)
    assert opened == []
    assert factory.calls == ["startFactory", "startedConnecting", "stopFactory"]


def test_stop_connecting_from_another_greenlet_interrupts_a_blocked_open():
    opening = Event()
    released = []

    @dataclasses.dataclass
    class Hanging(ClientEndpoint):
        def description_parts(self):
            return ("hanging", (), {})

        def open(self, timeout=None):
            opening.set()
            try:
                gevent.sleep(30)
            finally:
                released.append(True)  # an endpoint's cleanup runs

    factory = CountingFactory()
    attempt = gevent.spawn(Hanging().connect, factory)
    assert opening.wait(5)
    factory.connector.stopConnecting()
    attempt.join(5)
    assert isinstance(attempt.exception, ConnectCancelledError)
    assert released == [True]
    assert factory.connector.state == "disconnected"
    with pytest.raises(RuntimeError, match="not connecting"):
        factory.connector.stopConnecting()


def test_connector_disconnect_closes_an_established_connection(server_endpoint):
    factory = CountingFactory()
    with server_endpoint.listen(Factory.forProtocol(Recorder)) as port:
        protocol = client_for(port, server_endpoint).connect(factory)
        factory.connector.disconnect()
        assert protocol.closed.wait(5)
    assert protocol.log == ["connectionMade", ("connectionLost", "ConnectionDone")]


def test_connect_protocol_runs_a_prebuilt_protocol(server_endpoint):
    with server_endpoint.listen(Factory.forProtocol(Recorder)) as port:
        mine = Recorder()
        for connect in (connect_protocol, connectProtocol):
            mine = Recorder()
            assert connect(client_for(port, server_endpoint), mine, timeout=5) is mine
            assert mine.log == ["connectionMade"]
            mine.transport.loseConnection()
            assert mine.closed.wait(5)


# -- listen ---------------------------------------------------------------------------------


def test_listen_starts_the_factory_and_stopping_the_port_stops_it(server_endpoint):
    factory = CountingFactory()
    port = server_endpoint.listen(factory)
    try:
        assert factory.calls == ["startFactory"]
        sock = raw_client(port, server_endpoint)
        try:
            wait_until(lambda: factory.addresses)
        finally:
            sock.close()
    finally:
        port.stop_listening(timeout=1)
    assert factory.calls == ["startFactory", "stopFactory"]
    if isinstance(server_endpoint, TCP4ServerEndpoint):
        assert isinstance(factory.addresses[0], IPv4Address)


def test_listen_factory_returning_none_closes_the_connection(server_endpoint):
    class Refusing(Factory):
        def buildProtocol(self, addr):
            return None

    with server_endpoint.listen(Refusing()) as port:
        sock = raw_client(port, server_endpoint)
        try:
            assert read_all(sock) == b""
        finally:
            sock.close()


def test_listen_closes_the_connection_of_a_handler_killed_in_build_protocol(server_endpoint):
    # The port leaves closing to the protocol handler; a kill before the transport
    # exists must still close the socket (the fd-leak fixture checks).
    building = Event()

    class Slow(Factory):
        def buildProtocol(self, addr):
            building.set()
            gevent.sleep(30)

    port = server_endpoint.listen(Slow())
    sock = raw_client(port, server_endpoint)
    try:
        assert building.wait(5)
        port.stop_listening(timeout=0)
        assert read_all(sock) == b""
    finally:
        sock.close()
        port.stop_listening(timeout=0)


def test_bind_failure_calls_nothing_on_the_factory():
    class Unbindable(ServerEndpoint):
        def bind(self):
            raise OSError("cannot bind")

    factory = CountingFactory()
    with pytest.raises(OSError, match="cannot bind"):
        Unbindable().listen(factory)
    assert factory.calls == []


# -- Twisted's own protocol classes over greenpoint --------------------------------------------


def test_twisted_line_receiver_runs_unchanged_with_listen_and_connect(server_endpoint):
    basic = pytest.importorskip("twisted.protocols.basic")

    class Shouter(basic.LineReceiver):
        def lineReceived(self, line):
            if line == b"quit":
                self.sendLine(b"bye")
                self.transport.loseConnection()
            else:
                self.sendLine(line.upper())

    class Asker(basic.LineReceiver):
        def connectionMade(self):
            self.lines = []
            self.done = Event()
            self.reasons = []
            for line in [b"hello", b"line receiver"]:
                self.sendLine(line)
            self.transport.writeSequence([b"qu", b"it\r\n"])

        def lineReceived(self, line):
            self.lines.append(line)

        def connectionLost(self, reason):
            self.reasons.append(reason)
            self.done.set()

    with server_endpoint.listen(Factory.forProtocol(Shouter)) as port:
        asker = client_for(port, server_endpoint).connect(Factory.forProtocol(Asker))
        assert asker.done.wait(5)
    assert asker.lines == [b"HELLO", b"LINE RECEIVER", b"bye"]
    assert [type(r) for r in asker.reasons] == [ConnectionDone]


def test_twisted_line_receiver_line_too_long_drops_the_connection(server_endpoint):
    basic = pytest.importorskip("twisted.protocols.basic")

    class Small(basic.LineReceiver):
        MAX_LENGTH = 10

        def lineReceived(self, line):
            self.sendLine(b"ok")

    with server_endpoint.listen(Factory.forProtocol(Small)) as port:
        sock = raw_client(port, server_endpoint)
        try:
            sock.sendall(b"short\r\n" + b"x" * 100 + b"\r\n")
            assert read_all(sock) == b"ok\r\n"
        finally:
            sock.close()


def test_twisted_factory_and_protocol_classes_work_with_greenpoint_endpoints(server_endpoint):
    tprotocol = pytest.importorskip("twisted.internet.protocol")

    class TwistedEcho(tprotocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    reasons = []

    class TwistedClient(tprotocol.Protocol):
        def connectionMade(self):
            self.received = b""
            self.transport.write(b"ping")

        def dataReceived(self, data):
            self.received += data
            if self.received == b"ping":
                self.transport.loseConnection()

        def connectionLost(self, reason):
            reasons.append(reason)

    with server_endpoint.listen(tprotocol.Factory.forProtocol(TwistedEcho)) as port:
        client = client_for(port, server_endpoint).connect(
            tprotocol.ClientFactory.forProtocol(TwistedClient)
        )
        wait_until(lambda: reasons)
    assert client.received == b"ping"
    assert isinstance(reasons[0], ConnectionDone)
    assert not isinstance(reasons[0], ConnectionLost)


class AddressesAtTheEnd(Protocol):
    """Asks for its addresses only in ``connectionLost``, as logging protocols do."""

    def __init__(self):
        self.seen = None
        self.closed = Event()

    def connectionLost(self, reason):
        self.seen = (self.transport.getPeer(), self.transport.getHost())
        self.closed.set()


def test_get_peer_and_get_host_still_answer_after_the_connection_closed(server_endpoint):
    served = []

    def build(addr):
        protocol = AddressesAtTheEnd()
        served.append(protocol)
        return protocol

    factory = Factory()
    factory.buildProtocol = build
    with server_endpoint.listen(factory) as port:
        client = client_for(port, server_endpoint).connect(Factory.forProtocol(AddressesAtTheEnd))
        client.transport.loseConnection()
        assert client.closed.wait(5)
        wait_until(lambda: served and served[0].closed.is_set())
    client_peer, client_host = client.seen
    server_peer, server_host = served[0].seen
    assert client_peer == server_host == port.get_host()
    if isinstance(server_endpoint, TCP4ServerEndpoint):
        assert server_peer == client_host
        assert client_host.host == "127.0.0.1"
    # And from outside, once the transports are closed.
    assert client.transport.getHost() == client_host
    assert served[0].transport.getPeer() == server_peer
