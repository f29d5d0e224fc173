"""Loop dispatch's short path per message, and the state flags that guard it.

Plain data for a connection in its plain state is handed to ``dataReceived`` by the
dispatcher itself (``CallbackTransport._direct``), entering the connection's context
by the dispatcher greenlet's ``gr_context``; ``write`` sends at once while
``_send_now`` holds. These tests check that the short path is really taken for the
messages after the first, that it is left whenever pause, a blocked call, a close
or end of file need the full path, and that what protocol code sees (its context,
its timers' owner, order, held data) is the same on both paths.
"""

from __future__ import annotations

import contextvars
import socket

import gevent
import pytest
from _protocol_helpers import BuildingFactory, raw_client, tcp_server
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import ConnectionDone, Protocol
from greenpoint._callback_transport import CallbackTransport
from greenpoint._reactor_time import current_owner

pytestmark = pytest.mark.timeout(20)

MARK: contextvars.ContextVar[object] = contextvars.ContextVar("mark", default=None)


def read_exactly(sock, size):
    got = b""
    while len(got) < size:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {len(got)} of {size} bytes"
        got += chunk
    return got


def counting_deliveries(monkeypatch):
    """Count the data items that took the full path (``_deliver``)."""
    full = []
    original = CallbackTransport._deliver

    def deliver(self, item):
        if item.__class__ is bytes:
            full.append(item)
        original(self, item)

    monkeypatch.setattr(CallbackTransport, "_deliver", deliver)
    return full


class Echo(Protocol):
    def __init__(self):
        self.received = []
        self.closed = Event()
        self.reason = None

    def dataReceived(self, data):
        self.received.append(data)
        self.transport.write(data)

    def connectionLost(self, reason):
        self.reason = reason
        self.closed.set()


def test_messages_after_the_first_take_the_short_path(monkeypatch):
    full = counting_deliveries(monkeypatch)
    factory = BuildingFactory(Echo)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            for n in range(20):
                message = b"message %02d" % n
                sock.sendall(message)
                assert read_exactly(sock, len(message)) == message
            protocol = factory.built[0]
            assert protocol.transport._direct is protocol
        assert protocol.closed.wait(5)
    # The first message sets the short path up; end of file takes the full path.
    assert full[0] == b"message 00"
    assert len(full) <= 2, full


def test_each_connection_keeps_its_own_context_and_timer_owner_on_the_short_path():
    seen = []

    class Marking(Protocol):
        def dataReceived(self, data):
            previous = MARK.get()
            MARK.set(self)
            seen.append((self, previous, current_owner.get() is self.transport))
            self.transport.write(b"k")

    factory = BuildingFactory(Marking)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        socks = [raw_client(port, endpoint) for _ in range(3)]
        try:
            for _ in range(5):
                for sock in socks:  # all three ready in the same loop turns
                    sock.sendall(b"x")
                for sock in socks:
                    assert read_exactly(sock, 1) == b"k"
        finally:
            for sock in socks:
                sock.close()
    assert len(seen) == 15
    firsts = set()
    for protocol, previous, owned in seen:
        assert owned, "current_owner is not the connection whose code runs"
        if protocol not in firsts:
            firsts.add(protocol)
            assert previous is None  # a fresh context per connection
        else:
            assert previous is protocol  # its own value, never another connection's


def test_pause_leaves_the_short_path_holds_data_in_order_and_resume_returns_to_it(
    monkeypatch,
):
    full = counting_deliveries(monkeypatch)

    class Pausing(Echo):
        def dataReceived(self, data):
            super().dataReceived(data)
            if data.startswith(b"pause"):
                self.transport.pauseProducing()

    factory = BuildingFactory(Pausing)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            for n in range(3):
                sock.sendall(b"m%d" % n)
                assert read_exactly(sock, 2) == b"m%d" % n
            protocol = factory.built[0]
            transport = protocol.transport
            assert transport._direct is protocol
            sock.sendall(b"pause")
            assert read_exactly(sock, 5) == b"pause"
            assert transport._direct is None
            sock.sendall(b"held1")
            gevent.sleep(0.05)
            assert protocol.received[-1] == b"pause"  # nothing delivered while paused
            before = len(full)
            transport.resumeProducing()
            assert read_exactly(sock, 5) == b"held1"
            sock.sendall(b"after")
            assert read_exactly(sock, 5) == b"after"
            assert len(full) > before  # the way back is through the full path...
            for n in range(5):
                sock.sendall(b"z%d" % n)
                assert read_exactly(sock, 2) == b"z%d" % n
            assert transport._direct is protocol  # ...and then the short one again
        assert protocol.closed.wait(5)
    assert [d for d in protocol.received if d != b"pause"][3:5] == [b"held1", b"after"]


def test_a_blocked_call_leaves_the_short_path_and_later_data_waits_in_order():
    release = Event()

    class Blocking(Echo):
        def dataReceived(self, data):
            if data == b"block":
                release.wait()
            super().dataReceived(data)

    factory = BuildingFactory(Blocking)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock, raw_client(port, endpoint) as other:
            for n in range(3):
                sock.sendall(b"m%d" % n)
                assert read_exactly(sock, 2) == b"m%d" % n
            protocol = factory.built[0]
            assert protocol.transport._direct is protocol
            sock.sendall(b"block")
            wait_until(lambda: protocol.transport._holder is not None, what="the hold")
            assert protocol.transport._direct is None
            sock.sendall(b"next1")
            gevent.sleep(0.02)
            sock.sendall(b"next2")
            other.sendall(b"free")  # the other connection is served meanwhile
            assert read_exactly(other, 4) == b"free"
            release.set()
            assert read_exactly(sock, 15) == b"blocknext1next2"
            for n in range(3):
                sock.sendall(b"a%d" % n)
                assert read_exactly(sock, 2) == b"a%d" % n
            assert protocol.transport._direct is protocol
        assert protocol.closed.wait(5)


def test_data_behind_a_lose_connection_in_the_same_batch_is_not_delivered():
    class Losing(Echo):
        def dataReceived(self, data):
            super().dataReceived(data)
            if b"bye" in data:
                self.transport.loseConnection()

    factory = BuildingFactory(Losing)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port, raw_client(port, endpoint) as sock:
        for n in range(3):
            sock.sendall(b"m%d" % n)
            assert read_exactly(sock, 2) == b"m%d" % n
        protocol = factory.built[0]
        assert protocol.transport._direct is protocol
        sock.sendall(b"bye")
        assert read_exactly(sock, 3) == b"bye"
        try:
            sock.sendall(b"late")
        except OSError:
            pass
        assert protocol.closed.wait(5)
        assert sock.recv(10) == b""
    assert b"late" not in b"".join(protocol.received)
    assert isinstance(protocol.reason, ConnectionDone)


def test_write_leaves_its_short_path_while_data_is_queued_and_returns_after():
    big = b"b" * (8 << 20)  # more than the kernel takes at once

    class Writer(Echo):
        def dataReceived(self, data):
            super().dataReceived(data)
            if data == b"big":
                self.transport.write(big)
                self.queued = self.transport._send_now
                self.transport.write(b"END")

    factory = BuildingFactory(Writer)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            sock.sendall(b"big")
            got = read_exactly(sock, 3 + len(big) + 3)
            assert got == b"big" + big + b"END"
            protocol = factory.built[0]
            assert protocol.queued is False  # the rest of big was queued
            wait_until(lambda: protocol.transport._buffered == 0, what="the queue to drain")
            sock.sendall(b"x")
            assert read_exactly(sock, 1) == b"x"
            assert protocol.transport._send_now is True
        assert protocol.closed.wait(5)


def test_write_accepts_bytes_likes_refuses_str_and_is_ignored_once_closed():
    results = []

    class Writer(Echo):
        def dataReceived(self, data):
            self.transport.write(bytearray(b"ba"))
            self.transport.write(memoryview(b"mv"))
            try:
                self.transport.write("text")
            except TypeError as exc:
                results.append(str(exc))
            if data == b"half":
                self.transport.loseWriteConnection()
                self.transport.write(b"ignored")

        def connectionLost(self, reason):
            self.transport.write(b"too late")
            super().connectionLost(reason)

    factory = BuildingFactory(Writer)
    endpoint = tcp_server()
    with endpoint.listen(factory, dispatch="loop") as port:
        with raw_client(port, endpoint) as sock:
            for _ in range(3):
                sock.sendall(b"x")
                assert read_exactly(sock, 4) == b"bamv"
            sock.sendall(b"half")
            assert read_exactly(sock, 4) == b"bamv"
            assert sock.recv(10) == b""  # our sending half was shut, nothing after
            sock.shutdown(socket.SHUT_WR)
        assert factory.built[0].closed.wait(5)
    assert results and all("write() takes bytes, not str" in text for text in results)


def test_a_socket_closed_behind_a_paused_transport_never_reaches_a_reused_descriptor():
    class Paused(Echo):
        def connectionMade(self):
            self.transport.pauseProducing()

    factory = BuildingFactory(Echo)
    paused_factory = BuildingFactory(Paused)
    endpoint, second = tcp_server(), tcp_server()
    with (
        endpoint.listen(paused_factory, dispatch="loop") as first_port,
        second.listen(factory, dispatch="loop") as port,
    ):
        address = ("127.0.0.1", port.get_host().port)
        others = [gsocket.socket() for _ in range(4)]  # their descriptors exist already
        try:
            with raw_client(first_port, endpoint):
                wait_until(lambda: paused_factory.built, what="the first connection")
                victim = paused_factory.built[0]
                transport = victim.transport
                handle = transport.getHandle()
                old_fd = handle.fileno()
                handle.close()  # behind the transport's back, while it does not read
                gevent.sleep(0.01)
                for other in others:  # accepted now: the first gets the freed number
                    other.connect(address)
                wait_until(lambda: len(factory.built) == 4, what="the new connections")
                numbers = [p.transport.getHandle().fileno() for p in factory.built]
                for other in others:
                    other.sendall(b"mine")
                    assert read_exactly(other, 4) == b"mine"
                transport.write(b"stray")  # must not reach a new connection
                transport.resumeProducing()  # must not read from one
                for other in others:
                    other.sendall(b"again")
                    assert read_exactly(other, 5) == b"again"
                gevent.sleep(0.05)
                for other in others:
                    other.setblocking(False)
                    with pytest.raises(BlockingIOError):
                        other.recv(100)
                assert all(p.received == [b"mine", b"again"] for p in factory.built)
                # The write found the socket closed: the connection ended there.
                assert victim.closed.wait(5)
        finally:
            for other in others:
                other.close()
    assert old_fd in numbers, "no new connection got the old descriptor: the test proves nothing"


def test_a_socket_closed_under_a_reading_transport_keeps_its_number_until_it_ended():
    # What reading with os.read on a kept descriptor number relies on: while our
    # read watcher is started, closing the socket from outside tells the transport
    # (which stops reading) before the descriptor is closed, so no new file can get
    # the number while the transport may still read it.
    pairs = []

    class Closing(Echo):
        def dataReceived(self, data):
            if data != b"close":
                super().dataReceived(data)
                return
            handle = self.transport.getHandle()
            self.old_fd = handle.fileno()
            handle.close()  # behind the transport's back, while it reads
            pairs.append(socket.socketpair())  # the lowest free numbers now
            self.new_fds = [s.fileno() for s in pairs[-1]]

    factory = BuildingFactory(Closing)
    endpoint = tcp_server()
    try:
        with endpoint.listen(factory, dispatch="loop") as port, raw_client(port, endpoint) as sock:
            for n in range(3):
                sock.sendall(b"m%d" % n)
                assert read_exactly(sock, 2) == b"m%d" % n
            protocol = factory.built[0]
            assert protocol.transport._direct is protocol  # on the short path
            sock.sendall(b"close")
            assert protocol.closed.wait(5)
            assert sock.recv(10) == b""
        assert protocol.old_fd not in protocol.new_fds
        assert not protocol.transport._reading
    finally:
        for pair in pairs:
            for s in pair:
                s.close()
