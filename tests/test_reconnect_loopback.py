"""ReconnectingClient against real servers on loopback, with small real delays."""

from __future__ import annotations

import os
import socket as stdsocket
import subprocess
import sys
import time

import gevent
import pytest
from _net_helpers import black_hole
from _wait_helpers import wait_until
from gevent.event import Event

from greenpoint import (
    ClientFactory,
    ConnectRefusedError,
    Factory,
    HostnameEndpoint,
    Protocol,
    ReconnectingClient,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
)
from greenpoint.testing import FakeResolver

pytestmark = pytest.mark.timeout(20)

FAST = {"initial_delay": 0.02, "max_delay": 0.1, "jitter": 0}


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Client(Protocol):
    def __init__(self):
        self.received = Event()
        self.data = b""
        self.lost = Event()

    def dataReceived(self, data):
        self.data += data
        self.received.set()

    def connectionLost(self, reason):
        self.lost.set()


def listen_echo(port=0):
    return TCP4ServerEndpoint(port, interface="127.0.0.1").listen(Factory.forProtocol(Echo))


def round_trip(protocol, payload=b"ping"):
    protocol.received.clear()
    protocol.transport.write(payload)
    assert protocol.received.wait(5)
    return protocol.data


@pytest.fixture
def unused_port():
    """A loopback port where nothing listens: bound (so nobody else takes it), not listening."""
    sock = stdsocket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_server_restarted_on_the_same_port_gets_a_new_connection():
    server = listen_echo()
    port = server.get_host().port
    client = ReconnectingClient(
        TCP4ClientEndpoint("127.0.0.1", port), Factory.forProtocol(Client), **FAST
    )
    with client:
        first = client.when_connected(timeout=5)
        assert round_trip(first) == b"ping"
        server.stop_listening(timeout=0)  # the server goes away, and its connections
        assert first.lost.wait(5)
        assert client.protocol is None
        wait_until(lambda: client.failures >= 1, what="a refused retry while it is down")
        server = listen_echo(port)
        try:
            second = client.when_connected(timeout=5)
            assert second is not first
            assert round_trip(second, b"again") == b"again"
            assert client.failures == 0
        finally:
            client.stop(timeout=5)
            server.stop_listening(timeout=1)


def test_fail_after_one_failure_with_nothing_listening_raises_promptly(unused_port):
    # A 10 s back-off: "promptly" is then told from "after the back-off" even on a
    # machine that stalls for seconds.
    client = ReconnectingClient(
        TCP4ClientEndpoint("127.0.0.1", unused_port),
        Factory.forProtocol(Client),
        initial_delay=10,
        jitter=0,
    )
    client.start()
    started = time.monotonic()
    with pytest.raises(ConnectRefusedError, match=f"127.0.0.1:{unused_port}"):
        client.when_connected(fail_after_failures=1)
    assert time.monotonic() - started < 5  # not after the first back-off
    # Now in the back-off wait (10 s): stop() does not wait it out.
    assert client.state == "waiting"
    started = time.monotonic()
    assert client.stop() is True
    assert time.monotonic() - started < 5


def test_stop_during_a_connect_to_a_black_hole_returns_promptly():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port:
        client = ReconnectingClient(
            TCP4ClientEndpoint("127.0.0.1", port, timeout=30), Factory.forProtocol(Client)
        )
        client.start()
        gevent.sleep(0.3)  # the sleep is the check: the connect hangs, nothing fails
        assert client.state == "connecting" and client.failures == 0
        started = time.monotonic()
        assert client.stop() is True
        assert time.monotonic() - started < 5  # not the 30 s connect timeout
        assert client.state == "stopped"


def test_a_host_name_is_resolved_again_on_each_attempt():
    first_server = listen_echo()
    second_server = listen_echo()
    resolver = FakeResolver()
    resolver.add("service.test", stdsocket.AF_INET6, [])
    resolver.add("service.test", stdsocket.AF_INET, [("127.0.0.1", first_server.get_host().port)])
    endpoint = HostnameEndpoint("service.test", 9, resolver=resolver)
    client = ReconnectingClient(endpoint, Factory.forProtocol(Client), **FAST)
    try:
        with client:
            first = client.when_connected(timeout=5)
            assert first.transport.getPeer().port == first_server.get_host().port
            lookups = len(resolver.calls)
            # The service moves: DNS now names the second server; the first goes away.
            second_port = second_server.get_host().port
            resolver.add("service.test", stdsocket.AF_INET, [("127.0.0.1", second_port)])
            first_server.stop_listening(timeout=0)
            assert first.lost.wait(5)
            second = client.when_connected(timeout=5)
            assert second.transport.getPeer().port == second_port
            assert round_trip(second) == b"ping"
            assert len(resolver.calls) > lookups
            assert all(host == "service.test" for _, host, _ in resolver.calls)
    finally:
        first_server.stop_listening(timeout=0)
        second_server.stop_listening(timeout=0)


class CountingFactory(ClientFactory):
    protocol = Client

    def __init__(self):
        self.made = 0
        self.lost = 0

    def buildProtocol(self, addr):
        self.made += 1
        return super().buildProtocol(addr)

    def clientConnectionLost(self, connector, reason):
        self.lost += 1


@pytest.mark.timeout(30)
def test_many_connect_and_lose_cycles_leak_no_file_descriptor():
    cycles = 60
    accepted = 0
    enough = Event()

    def close_at_once(stream, address):
        nonlocal accepted
        accepted += 1
        if accepted >= cycles:
            enough.set()

    server = TCP4ServerEndpoint(0, interface="127.0.0.1").serve(close_at_once)
    factory = CountingFactory()
    fds_at_start = len(os.listdir("/proc/self/fd"))
    client = ReconnectingClient(
        TCP4ClientEndpoint("127.0.0.1", server.get_host().port),
        factory,
        policy=lambda attempt: 0.001,
    )
    try:
        client.start()
        assert enough.wait(20)
        # While cycling, no more than one connection's sockets are open at a time.
        assert len(os.listdir("/proc/self/fd")) <= fds_at_start + 3
    finally:
        assert client.stop(timeout=5) is True
        server.stop_listening(timeout=1)
    assert factory.made >= cycles
    assert factory.lost == factory.made  # every connection ended with clientConnectionLost
    assert factory.numPorts == 0


@pytest.mark.timeout(30)
def test_the_example_runs_and_exits_by_itself():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, os.path.join(root, "examples", "reconnecting_client.py")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert result.returncode == 0, result.stderr
    assert "connected" in result.stdout
    assert "reconnected" in result.stdout
    assert "failed: connection refused" in result.stdout  # it logs why it reconnects


def test_twisted_factory_and_line_receiver_run_unchanged(unused_port):
    tprotocol = pytest.importorskip("twisted.internet.protocol")
    basic = pytest.importorskip("twisted.protocols.basic")
    events = []

    class Upper(basic.LineReceiver):
        def lineReceived(self, line):
            self.sendLine(line.upper())

    class Asker(basic.LineReceiver):
        def connectionMade(self):
            self.lines = []
            self.answered = Event()
            self.sendLine(b"hello")

        def lineReceived(self, line):
            self.lines.append(line)
            self.answered.set()

    class PortedFactory(tprotocol.ClientFactory):
        protocol = Asker

        def clientConnectionFailed(self, connector, reason):
            events.append(("failed", str(connector.getDestination()), type(reason)))

        def clientConnectionLost(self, connector, reason):
            events.append(("lost", str(connector.getDestination()), type(reason)))

    endpoint = TCP4ClientEndpoint("127.0.0.1", unused_port)
    client = ReconnectingClient(endpoint, PortedFactory(), **FAST)
    with client:
        with pytest.raises(ConnectRefusedError):
            client.when_connected(fail_after_failures=1)
        server = TCP4ServerEndpoint(0, interface="127.0.0.1").listen(Factory.forProtocol(Upper))
        try:
            # Move the client to where the server is: a new endpoint, same client.
            client.endpoint = TCP4ClientEndpoint("127.0.0.1", server.get_host().port)
            asker = client.when_connected(timeout=5)
            assert asker.answered.wait(5)
            assert asker.lines == [b"HELLO"]
            assert isinstance(asker, Asker) and asker.factory is client.factory
        finally:
            client.stop(timeout=5)
            server.stop_listening(timeout=1)
    assert events[0] == ("failed", f"tcp4:127.0.0.1:{unused_port}", ConnectRefusedError)
    assert events[-1][0] == "lost"
