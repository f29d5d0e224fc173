"""Setting up and tearing down loop-dispatched connections (``listen(dispatch="loop")``).

What a connection is made of until someone needs more: the raw socket the hub
accepted, one read watcher, a write watcher only once a write had to wait, no
gevent socket until ``getHandle()``; its own address from the port when the
listener is bound to one address; and every way out closes the socket once.
"""

from __future__ import annotations

import socket

import gevent
import pytest
from _protocol_helpers import LOOPBACK, BuildingFactory, echoed, raw_client, tcp_server
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import ConnectionDone, ConnectionLost, Factory, Protocol
from greenpoint._address import IPv4Address, IPv6Address, UNIXAddress
from greenpoint._callback_port import CallbackPort, connection_host
from greenpoint._callback_transport import RAW_SOCKET, CallbackTransport
from greenpoint.endpoints.tcp import TCP4ServerEndpoint, TCP6ServerEndpoint
from greenpoint.endpoints.unix import UNIXServerEndpoint

pytestmark = pytest.mark.timeout(20)


def wait_for(predicate, timeout=5.0, what="condition"):
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not predicate():
            gevent.sleep(0.002)


class Recorder(Protocol):
    def __init__(self):
        self.received = b""
        self.reasons = []
        self.closed = Event()
        self.hosts = []

    def dataReceived(self, data):
        self.received += data
        self.transport.write(data)

    def connectionLost(self, reason):
        self.reasons.append(reason)
        self.hosts.append(self.transport.getHost())  # after the close
        self.closed.set()


def read_until_closed(sock):
    got = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return got
        got += chunk


# -- what a connection is made of ---------------------------------------------------------


def test_a_connection_has_the_raw_socket_and_one_read_watcher_until_a_write_must_wait():
    big = b"x" * (8 << 20)  # more than loopback's buffers take at once

    class Pusher(Recorder):
        def dataReceived(self, data):
            self.before = (self.transport._read_watcher, self.transport._write_watcher)
            if data == b"push":
                self.transport.write(big)
                self.after = self.transport._write_watcher
                self.transport.loseConnection()
            else:
                super().dataReceived(data)

    factory = BuildingFactory(Pusher)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            assert echoed(sock, b"ping") == b"ping"
            transport = factory.built[0].transport
            assert type(transport) is CallbackTransport
            assert type(transport._sock) is RAW_SOCKET  # no gevent socket around it
            assert transport._handle is None
            reader, writer = factory.built[0].before
            assert reader is not None and reader.active
            assert writer is None  # the write fitted: no write watcher was made
            sock.sendall(b"push")
            assert read_until_closed(sock) == big
        protocol = factory.built[0]
        assert protocol.closed.wait(5)
        assert protocol.after is not None  # made when the kernel was full
        assert isinstance(protocol.reasons[0], ConnectionDone)
        assert transport._handle is None  # still none: nobody asked for one
        assert transport._read_watcher is None and transport._write_watcher is None
        assert transport._sock.fileno() == -1  # closed


def test_get_handle_is_a_gevent_socket_around_the_same_raw_socket_and_reading_goes_on():
    class AsksForTheHandle(Recorder):
        def dataReceived(self, data):
            handle = self.transport.getHandle()
            self.handles = getattr(self, "handles", []) + [handle]
            super().dataReceived(data)

    factory = BuildingFactory(AsksForTheHandle)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            for n in range(5):
                assert echoed(sock, b"message %d" % n) == b"message %d" % n
            protocol = factory.built[0]
            handle = protocol.handles[0]
            assert all(h is handle for h in protocol.handles)  # made once
            assert type(handle) is gsocket.socket
            assert handle._sock is protocol.transport._sock  # not a copy, not a dup
            assert handle.getpeername() == sock.getsockname()
            # Our own watcher was handed over: the gevent socket's reads for us now.
            assert protocol.transport._read_watcher is None
            assert handle._read_event.active
            assert handle._read_event.callback == protocol.transport._readable
        assert protocol.closed.wait(5)
    assert isinstance(protocol.reasons[0], ConnectionDone)
    assert handle.fileno() == -1  # closed with the connection


def test_get_handle_while_a_write_waits_hands_the_write_watcher_over():
    big = b"y" * (8 << 20)

    class WritesThenAsks(Recorder):
        def connectionMade(self):
            self.transport.write(big)
            self.waited = self.transport._write_watcher is not None
            self.handle = self.transport.getHandle()
            self.transport.loseConnection()

    factory = BuildingFactory(WritesThenAsks)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            assert read_until_closed(sock) == big
        protocol = factory.built[0]
        assert protocol.closed.wait(5)
    assert protocol.waited
    assert type(protocol.handle) is gsocket.socket
    assert isinstance(protocol.reasons[0], ConnectionDone)


def test_get_handle_after_the_close_is_a_closed_gevent_socket():
    factory = BuildingFactory(Recorder)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            assert echoed(sock, b"ping") == b"ping"
        protocol = factory.built[0]
        assert protocol.closed.wait(5)
        handle = protocol.transport.getHandle()
        assert type(handle) is gsocket.socket
        assert handle.fileno() == -1
        assert protocol.transport.getHandle() is handle


def test_a_port_whose_listener_the_hub_cannot_watch_still_dispatches_from_the_loop():
    # A listener with a timeout is accepted from in a greenlet, into gevent sockets:
    # the connection keeps that socket as its handle.
    listener = gsocket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(30)
    factory = BuildingFactory(Recorder)
    port = CallbackPort.start_for(listener, factory, None, None)
    try:
        with gsocket.create_connection(listener.getsockname(), timeout=5) as sock:
            assert echoed(sock, b"ping") == b"ping"
            transport = factory.built[0].transport
            handle = transport.getHandle()
            assert type(handle) is gsocket.socket
            assert transport._sock is handle._sock
        assert factory.built[0].closed.wait(5)
    finally:
        port.stop_listening(timeout=1)
    assert handle.fileno() == -1


# -- every way out closes the socket, once ----------------------------------------------------


def _fds():
    import os

    return len(os.listdir("/proc/self/fd"))


class Refusing(Factory):
    def buildProtocol(self, addr):
        return None


class Failing(Factory):
    def buildProtocol(self, addr):
        raise RuntimeError("no protocol for you")


@pytest.mark.parametrize("factory", [Refusing(), Failing()], ids=["refused", "failed"])
def test_a_connection_without_a_protocol_is_closed_and_leaves_no_fd(factory, caplog):
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        before = _fds()
        for _ in range(5):
            with raw_client(port, endpoint) as sock:
                sock.settimeout(5)
                assert sock.recv(10) == b""  # closed by the server
        wait_for(lambda: port.handler_count == 0, what="the port to forget them")
        wait_for(lambda: _fds() <= before, what="their sockets to be closed")


def test_stopping_the_port_mid_connection_closes_every_socket_once():
    class Quiet(Recorder):
        def dataReceived(self, data):
            self.received += data  # and no answer: the connection stays open

    factory = BuildingFactory(Quiet)
    endpoint = tcp_server()
    port = endpoint.listen(factory, dispatch="loop")
    socks = [raw_client(port, endpoint) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(b"hi")
        wait_for(lambda: len(factory.built) == 4 and all(p.received for p in factory.built))
        factory.built[0].transport.getHandle()  # one with a gevent socket too
        port.stop_listening(timeout=0)
        for protocol in factory.built:
            assert protocol.closed.is_set()
            assert len(protocol.reasons) == 1
            assert isinstance(protocol.reasons[0], ConnectionLost)
        for sock in socks:
            sock.settimeout(5)
            assert sock.recv(10) == b""
    finally:
        for sock in socks:
            sock.close()
        port.stop_listening(timeout=0)
    assert port.handler_count == 0


def test_a_connection_that_asked_for_its_handle_is_still_swept_for_idleness():
    factory = BuildingFactory(Recorder)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop", idle_timeout=0.3) as port:
        with raw_client(port, endpoint) as sock:
            assert echoed(sock, b"ping") == b"ping"
            factory.built[0].transport.getHandle()
            sock.settimeout(5)
            assert sock.recv(10) == b""  # closed by the sweep
        assert factory.built[0].closed.wait(5)
        assert port.stats.closed_idle == 1


# -- our own address --------------------------------------------------------------------------


def test_the_port_gives_connections_its_address_unless_it_is_a_wildcard():
    assert connection_host(IPv4Address("127.0.0.1", 80)) == IPv4Address("127.0.0.1", 80)
    assert connection_host(IPv6Address("::1", 80)) == IPv6Address("::1", 80)
    assert connection_host(UNIXAddress("/run/x.sock")) == UNIXAddress("/run/x.sock")
    assert connection_host(UNIXAddress("\0abstract")) == UNIXAddress("\0abstract")
    assert connection_host(IPv4Address("0.0.0.0", 80)) is None
    assert connection_host(IPv6Address("::", 80)) is None
    assert connection_host(UNIXAddress(None)) is None


def _ipv6_available():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _endpoints(tmp_path):
    yield "tcp-one-address", TCP4ServerEndpoint(0, interface=LOOPBACK), LOOPBACK
    yield "tcp-wildcard", TCP4ServerEndpoint(0, interface="0.0.0.0"), LOOPBACK
    if _ipv6_available():
        yield "tcp6-one-address", TCP6ServerEndpoint(0, interface="::1"), "::1"
        yield "tcp6-wildcard", TCP6ServerEndpoint(0, interface="::"), "::1"
    yield "unix", UNIXServerEndpoint(str(tmp_path / "h.sock")), None


def test_get_host_after_the_close_is_the_address_the_client_connected_to(tmp_path):
    for name, endpoint, client_host in _endpoints(tmp_path):
        factory = BuildingFactory(Recorder)
        with endpoint.listen(factory, dispatch="loop") as port:
            bound = port.get_host()
            if client_host is None:
                sock = gsocket.socket(socket.AF_UNIX)
                sock.connect(bound.name)
            else:
                sock = gsocket.create_connection((client_host, bound.port), timeout=5)
            with sock:
                assert echoed(sock, b"ping") == b"ping"
                expected = sock.getpeername()
            protocol = factory.built[0]
            assert protocol.closed.wait(5), name
        if isinstance(bound, UNIXAddress):
            assert protocol.hosts == [bound], name
        else:
            assert protocol.hosts[0].host == expected[0], name
            assert protocol.hosts[0].port == bound.port, name


def test_a_held_connection_that_swallows_the_kill_never_reads_its_closed_socket_again():
    # stop_listening kills a connection whose protocol is blocked; if the protocol
    # swallows the kill and returns after the port has closed the socket, the
    # connection must not start reading again: the descriptor number may by then
    # belong to another connection.
    blocked = Event()
    returned = Event()

    class Stubborn(Protocol):
        def dataReceived(self, data):
            blocked.set()
            try:
                gevent.sleep(30)
            except gevent.GreenletExit:
                gevent.sleep(1.5)  # past the port's grace, after which it closes for us
            returned.set()

    factory = BuildingFactory(Stubborn)
    endpoint = tcp_server()
    port = endpoint.listen(factory, dispatch="loop")
    with raw_client(port, endpoint) as sock:
        sock.sendall(b"x")
        assert blocked.wait(5)
        transport = factory.built[0].transport
        port.stop_listening(timeout=0)
        assert returned.wait(5)
        # The held greenlet lets go of the connection.
        wait_for(lambda: transport.disconnected, what="the connection to end")
        assert not transport._reading
