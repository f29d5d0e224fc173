"""The transport over real loopback sockets (TCP and UNIX): writes, closes, flow control."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import socket
import struct
import weakref

import gevent
import pytest
from _dispatch_helpers import dispatch_mode  # noqa: F401 - runs each test in both modes
from _protocol_helpers import (
    Recorder,
    RecordingFactory,
    client_for,
    exchange,
    raw_client,
    read_all,
    tcp_server,
)
from _wait_helpers import wait_until
from gevent import socket as gsocket
from gevent.event import Event

from greenpoint import (
    ConnectionDone,
    ConnectionLost,
    Factory,
    IPv4Address,
    UNIXAddress,
)
from greenpoint._connect import ProtocolHandler
from greenpoint._transport import WRITE_HIGH_WATER
from greenpoint.endpoints.unix import UNIXServerEndpoint

pytestmark = pytest.mark.timeout(20)

MiB = 1024 * 1024


@pytest.fixture(params=["tcp", "unix"])
def server_endpoint(request, tmp_path):
    if request.param == "tcp":
        return tcp_server()
    return UNIXServerEndpoint(str(tmp_path / "s.sock"))


@pytest.fixture
def tcp_endpoint():
    return tcp_server()


class Echo(Recorder):
    def dataReceived(self, data):
        self.transport.write(data)


class LineUpper(Recorder):
    """A small line protocol: answers each newline-terminated line in upper case."""

    def connectionMade(self):
        self.buffer = b""

    def dataReceived(self, data):
        super().dataReceived(data)
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.transport.write(line.upper() + b"\n")


# -- echo and lines -------------------------------------------------------------


def test_echo_protocol_round_trips_and_closes_cleanly_both_sides(server_endpoint):
    server = RecordingFactory(Echo)
    with server_endpoint.listen(server) as port:
        client = client_for(port, server_endpoint).connect(Factory.forProtocol(Recorder))
        messages = [b"hello", b" ", b"world" * 1000, os.urandom(300_000)]
        for message in messages:
            client.transport.write(message)
        expected = b"".join(messages)
        wait_until(lambda: len(client.received) == len(expected), what="the echo")
        assert bytes(client.received) == expected
        client.transport.loseConnection()
        assert client.closed.wait(5)
        assert server.one().closed.wait(5)
    assert [type(r) for r in client.reasons] == [ConnectionDone]
    assert [type(r) for r in server.one().reasons] == [ConnectionDone]


def test_line_protocol_answers_lines_split_across_writes(server_endpoint):
    # Each piece reaches dataReceived before the next is sent: lines really are split.
    pieces = [b"one\ntw", b"o\n", b"thr", b"ee\nfour", b"\n"]
    received, protocol = exchange(server_endpoint, LineUpper, pieces)
    assert received == b"ONE\nTWO\nTHREE\nFOUR\n"
    assert protocol.reason_types == [ConnectionDone]


def test_write_sequence_sends_the_parts_in_order(tcp_endpoint):
    class Sequencer(Recorder):
        def connectionMade(self):
            self.transport.writeSequence([b"a", b"bc", b"", b"def"])
            self.transport.writeSequence([])
            self.transport.loseConnection()

    received, protocol = exchange(tcp_endpoint, Sequencer, half_close=False)
    assert received == b"abcdef"
    assert protocol.reason_types == [ConnectionDone]


# -- the write path -------------------------------------------------------------


def test_small_write_reaches_the_kernel_before_write_returns():
    ours, theirs = socket.socketpair()
    stream = gsocket.socket(fileno=ours.detach())
    try:
        protocol = Recorder()
        handler = gevent.spawn(ProtocolHandler(Factory.forProtocol(lambda: protocol)), stream, None)
        wait_until(lambda: protocol.transport is not None, what="connectionMade")
        protocol.transport.write(b"direct")
        # No greenlet switch since write(): the bytes are already in the kernel.
        assert theirs.recv(100, socket.MSG_DONTWAIT) == b"direct"
        assert protocol.transport.get_write_buffer_size() == 0
        protocol.transport.loseConnection()
        handler.join(5)
        assert handler.dead
    finally:
        theirs.close()
        stream.close()


def test_a_closed_connection_is_freed_without_the_garbage_collector():
    # protocol.transport points at the transport; the transport lets go of the
    # protocol once connectionLost has run, so no cycle is left per connection.
    ours, theirs = socket.socketpair()
    stream = gsocket.socket(fileno=ours.detach())
    gc.disable()
    try:
        made = []
        factory = Factory.forProtocol(lambda: made.append(Echo()) or made[-1])
        handler = gevent.spawn(ProtocolHandler(factory), stream, None)
        wait_until(lambda: made, what="connectionMade")
        theirs.sendall(b"ping")
        theirs.shutdown(socket.SHUT_WR)
        handler.join(5)
        assert handler.dead
        assert read_all(theirs) == b"ping"
        protocol = made.pop()
        assert [type(reason) for reason in protocol.reasons] == [ConnectionDone]
        assert repr(protocol.transport).endswith("closed>")
        protocol_ref = weakref.ref(protocol)
        transport_ref = weakref.ref(protocol.transport)
        del protocol, handler, stream
        assert protocol_ref() is None
        assert transport_ref() is None
    finally:
        gc.enable()
        theirs.close()


def test_eight_mib_in_one_write_then_lose_connection_arrives_whole(server_endpoint):
    payload = os.urandom(8 * MiB)
    state = {}

    class BigWriter(Recorder):
        def connectionMade(self):
            self.transport.write(payload)
            state["queued"] = self.transport.get_write_buffer_size()
            self.transport.loseConnection()
            state["disconnecting"] = self.transport.disconnecting

    received, protocol = exchange(server_endpoint, BigWriter, half_close=False, pause=0.001)
    assert state["queued"] > 0, "the kernel took 8 MiB at once; the writer was not exercised"
    assert state["disconnecting"] is True
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    assert protocol.reason_types == [ConnectionDone]


def test_client_protocol_big_write_then_lose_connection_arrives_whole(server_endpoint):
    payload = os.urandom(8 * MiB)

    class Uploader(Recorder):
        def connectionMade(self):
            self.transport.write(payload)
            self.transport.loseConnection()

    server = RecordingFactory(Recorder)
    with server_endpoint.listen(server) as port:
        client = client_for(port, server_endpoint).connect(Factory.forProtocol(Uploader))
        assert client.closed.wait(10)
        assert server.one().closed.wait(10)
    assert bytes(server.one().received) == payload
    assert [type(r) for r in client.reasons] == [ConnectionDone]


def test_many_small_writes_queued_behind_a_full_socket_keep_their_order(tcp_endpoint):
    blob = os.urandom(8 * MiB)  # fills the socket, so the lines below are queued
    lines = [b"%06d\n" % i for i in range(100_000)]

    class Chatty(Recorder):
        def connectionMade(self):
            self.transport.write(blob)
            self.queued_before = self.transport.get_write_buffer_size()
            for line in lines:
                self.transport.write(line)
            self.transport.loseConnection()

    received, protocol = exchange(tcp_endpoint, Chatty, half_close=False)
    assert received == blob + b"".join(lines)
    assert protocol.queued_before > 0
    assert protocol.reason_types == [ConnectionDone]


def test_write_rejects_text_and_is_ignored_after_close(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        client = client_for(port, tcp_endpoint).connect(Factory.forProtocol(Recorder))
        with pytest.raises(TypeError, match="bytes"):
            client.transport.write("text")
        client.transport.write(bytearray(b"ok"))
        wait_until(lambda: server.built and server.built[0].received == b"ok")
        client.transport.abortConnection()
        assert client.closed.wait(5)
        client.transport.write(b"ignored")
        client.transport.loseConnection()
        client.transport.abortConnection()
        assert server.one().closed.wait(5)
    assert server.one().received == b"ok"
    assert len(client.reasons) == 1


# -- closing ----------------------------------------------------------------------


def test_the_transport_tells_how_it_ended_and_which_greenlets_are_its_own(tcp_endpoint):
    seen = {}

    class Watcher(Recorder):
        def dataReceived(self, data):
            seen["reader_owned"] = self.transport.owns(gevent.getcurrent())
            seen["during_reason"] = self.transport.close_reason
            self.transport.abortConnection()

        def connectionLost(self, reason):
            seen["in_connection_lost"] = self.transport.close_reason
            super().connectionLost(reason)

    server = RecordingFactory(Watcher)
    with tcp_endpoint.listen(server) as port:
        sock = raw_client(port, tcp_endpoint)
        try:
            sock.sendall(b"go")
            protocol = server.one()
            assert protocol.transport.wait_closed(5)
        finally:
            sock.close()
    transport = protocol.transport
    assert seen["reader_owned"] is True and seen["during_reason"] is None
    assert not transport.owns(gevent.getcurrent()) and not transport.owns(None)
    (reason,) = protocol.reasons
    assert type(reason) is ConnectionLost and "aborted" in str(reason)
    assert transport.close_reason is reason and seen["in_connection_lost"] is reason


def test_abort_drops_unsent_data(tcp_endpoint):
    size = 64 * MiB

    class Aborter(Recorder):
        def connectionMade(self):
            self.transport.write(b"\0" * size)
            self.queued = self.transport.get_write_buffer_size()
            self.transport.abortConnection()

    received, protocol = exchange(tcp_endpoint, Aborter, half_close=False)
    assert protocol.queued > 0
    assert len(received) < size
    assert protocol.reason_types == [ConnectionLost]


def test_lose_connection_from_another_greenlet_wakes_the_reader(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        client = client_for(port, tcp_endpoint).connect(Factory.forProtocol(Recorder))
        server.one()
        gevent.idle()  # every greenlet has run: the client's reader is parked in recv
        client.transport.write(b"bye")
        client.transport.loseConnection()
        assert client.transport.disconnecting
        assert client.closed.wait(5)
        assert server.one().closed.wait(5)
    assert client.transport.connected is False
    assert client.connected == 0
    assert server.one().received == b"bye"
    assert [type(r) for r in client.reasons] == [ConnectionDone]
    assert [type(r) for r in server.one().reasons] == [ConnectionDone]


def test_peer_reset_gives_connection_lost_once(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        sock = raw_client(port, tcp_endpoint)
        server.one()
        # SO_LINGER with a zero timeout makes close() send a RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert server.one().closed.wait(5)
        gevent.sleep(0.05)  # the sleep is the check: no second connectionLost comes
    reasons = server.one().reasons
    assert [type(r) for r in reasons] == [ConnectionLost]
    assert isinstance(reasons[0].__cause__, OSError)


def test_peer_close_gives_connection_done_once(server_endpoint):
    server = RecordingFactory(Recorder)
    with server_endpoint.listen(server) as port:
        sock = raw_client(port, server_endpoint)
        sock.sendall(b"last words")
        sock.close()
        assert server.one().closed.wait(5)
        gevent.sleep(0.05)  # the sleep is the check: no second connectionLost comes
    assert server.one().received == b"last words"
    assert [type(r) for r in server.one().reasons] == [ConnectionDone]


# -- half-close -------------------------------------------------------------------


def test_peer_half_close_is_told_to_read_connection_lost_and_we_can_still_answer(
    server_endpoint,
):
    class Answerer(Recorder):
        def readConnectionLost(self):
            self.transport.write(b"got:" + bytes(self.received))
            self.transport.loseConnection()

    received, protocol = exchange(server_endpoint, Answerer, b"request")
    assert received == b"got:request"
    assert protocol.reason_types == [ConnectionDone]


def test_peer_half_close_without_read_connection_lost_closes_after_flushing(tcp_endpoint):
    answer = os.urandom(4 * MiB)

    class BigAnswer(Recorder):
        def dataReceived(self, data):
            self.transport.write(answer)

    received, protocol = exchange(tcp_endpoint, BigAnswer, b"?", pause=0.001)
    assert received == answer
    assert protocol.reason_types == [ConnectionDone]


def test_our_half_close_lets_the_peer_keep_sending(server_endpoint):
    class Banner(Recorder):
        write_lost = 0
        read_lost = 0

        def connectionMade(self):
            self.transport.write(b"banner")
            self.transport.loseWriteConnection()
            self.transport.write(b"dropped: the write side is closing")

        def writeConnectionLost(self):
            self.write_lost += 1

        def readConnectionLost(self):
            self.read_lost += 1

    server = RecordingFactory(Banner)
    with server_endpoint.listen(server) as port:
        sock = raw_client(port, server_endpoint)
        try:
            assert read_all(sock) == b"banner"  # EOF: the server half-closed
            protocol = server.one()
            assert protocol.write_lost == 1
            assert not protocol.closed.is_set()
            sock.sendall(b"still talking")
            wait_until(lambda: protocol.received == b"still talking")
            sock.shutdown(socket.SHUT_WR)
            # Both directions are now closed: the connection ends cleanly by itself.
            assert protocol.closed.wait(5)
        finally:
            sock.close()
    assert protocol.read_lost == 1
    assert [type(r) for r in protocol.reasons] == [ConnectionDone]


# -- reading flow control ------------------------------------------------------------


def test_pause_producing_stops_data_received_until_resumed(server_endpoint):
    server = RecordingFactory(Recorder)
    with server_endpoint.listen(server) as port:
        sock = raw_client(port, server_endpoint)
        try:
            protocol = server.one()
            sock.sendall(b"first")
            wait_until(lambda: protocol.received == b"first")
            protocol.transport.pauseProducing()
            sock.sendall(b"second")
            gevent.sleep(0.1)  # the sleep is the check: nothing arrives while paused
            assert protocol.received == b"first"
            protocol.transport.resumeProducing()
            wait_until(lambda: protocol.received == b"firstsecond")
        finally:
            sock.close()
        assert protocol.closed.wait(5)


def test_data_already_read_when_paused_from_elsewhere_waits_for_resume(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        sock = raw_client(port, tcp_endpoint)
        try:
            protocol = server.one()
            gevent.idle()  # every greenlet has run: the reader is parked in recv
            protocol.transport.pauseProducing()
            sock.sendall(b"held")
            gevent.sleep(0.1)  # the sleep is the check: nothing arrives while paused
            assert protocol.received == b""
            protocol.transport.resumeProducing()
            wait_until(lambda: protocol.received == b"held")
        finally:
            sock.close()
        assert protocol.closed.wait(5)


# -- producers ------------------------------------------------------------------------


class PushProducer:
    """Writes ``total`` bytes in chunks from its own greenlet while not paused."""

    def __init__(self, transport, total, chunk=64 * 1024):
        self.transport = transport
        self.total = total
        self.chunk = chunk
        self.sent = 0
        self.pauses = 0
        self.resumes = 0
        self.paused = False
        self.stopped = False
        self.wake = Event()
        self.digest = hashlib.sha256()

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.paused = False
        self.resumes += 1
        self.wake.set()

    def stopProducing(self):
        self.stopped = True
        self.wake.set()

    def run(self):
        counter = 0
        while self.sent < self.total and not self.stopped:
            if self.paused:
                self.wake.clear()
                self.wake.wait()
                continue
            data = (b"%08d" % counter) * (self.chunk // 8)
            counter += 1
            self.digest.update(data)
            self.transport.write(data)
            self.sent += len(data)
            gevent.sleep(0)
        self.transport.unregisterProducer()
        self.transport.loseConnection()


def test_streaming_producer_pauses_when_peer_stops_reading_and_resumes_after(tcp_endpoint):
    total = 32 * MiB

    class Streamer(Recorder):
        def connectionMade(self):
            self.producer = PushProducer(self.transport, total)
            self.transport.registerProducer(self.producer, True)
            self.greenlet = gevent.spawn(self.producer.run)

    server = RecordingFactory(Streamer)
    with tcp_endpoint.listen(server) as port:
        sock = raw_client(port, tcp_endpoint)
        try:
            protocol = server.one()
            producer = protocol.producer
            wait_until(lambda: producer.paused, what="the producer to be paused")
            assert protocol.transport.producerPaused
            assert protocol.transport.get_write_buffer_size() > WRITE_HIGH_WATER
            sent_when_paused = producer.sent
            gevent.sleep(0.1)  # the sleep is the check: the producer stays paused
            assert producer.sent == sent_when_paused  # the peer reads nothing: stays paused
            assert producer.sent < total
            digest = hashlib.sha256(read_all(sock)).digest()
        finally:
            sock.close()
        assert protocol.closed.wait(5)
        protocol.greenlet.join(5)
    assert producer.resumes >= 1
    assert producer.sent == total
    assert digest == producer.digest.digest()
    assert [type(r) for r in protocol.reasons] == [ConnectionDone]


def test_pull_producer_is_asked_once_per_chunk_sent_as_twisted_does(tcp_endpoint):
    chunks = [os.urandom(200_000) for _ in range(20)]

    class Puller:
        def __init__(self, transport):
            self.transport = transport
            self.calls = 0
            self.remaining = list(chunks)

        def resumeProducing(self):
            self.calls += 1
            if self.remaining:
                self.transport.write(self.remaining.pop(0))
            else:
                self.transport.unregisterProducer()
                self.transport.loseConnection()

        def stopProducing(self):
            raise AssertionError("not expected: the connection ends cleanly")

    class Pulling(Recorder):
        def connectionMade(self):
            self.producer = Puller(self.transport)
            self.transport.registerProducer(self.producer, False)
            self.transport.loseConnection()  # waits for unregisterProducer

    received, protocol = exchange(tcp_endpoint, Pulling, half_close=False, pause=0.001)
    assert received == b"".join(chunks)
    assert protocol.producer.calls == len(chunks) + 1
    assert [type(r) for r in protocol.reasons] == [ConnectionDone]


def test_registering_a_second_producer_is_an_error_and_a_dead_transport_stops_it():
    ours, theirs = socket.socketpair()
    stream = gsocket.socket(fileno=ours.detach())
    try:
        protocol = Recorder()
        handler = gevent.spawn(ProtocolHandler(Factory.forProtocol(lambda: protocol)), stream, None)
        wait_until(lambda: protocol.transport is not None)
        transport = protocol.transport

        class Producer:
            stopped = 0

            def pauseProducing(self):
                pass

            def resumeProducing(self):
                pass

            def stopProducing(self):
                self.stopped += 1

        first, second = Producer(), Producer()
        transport.registerProducer(first, True)
        with pytest.raises(RuntimeError, match="still registered"):
            transport.registerProducer(second, True)
        theirs.close()
        assert protocol.closed.wait(5)
        assert first.stopped == 1  # the connection ended: its producer is stopped
        transport.unregisterProducer()
        transport.registerProducer(second, True)
        assert second.stopped == 1
        handler.join(5)
    finally:
        stream.close()


# -- errors in protocol code -------------------------------------------------------------


def test_exception_in_data_received_is_logged_closes_with_it_and_server_goes_on(
    server_endpoint, caplog
):
    class Fragile(Echo):
        def dataReceived(self, data):
            if b"boom" in data:
                raise ValueError("boom in dataReceived")
            super().dataReceived(data)

    server = RecordingFactory(Fragile)
    logs = caplog.at_level(logging.ERROR, logger="greenpoint")
    with logs, server_endpoint.listen(server) as port:
        sock = raw_client(port, server_endpoint)
        try:
            sock.sendall(b"boom")
            assert read_all(sock, reset_ends=True) == b""
        finally:
            sock.close()
        first = server.one()
        assert first.closed.wait(5)

        second = raw_client(port, server_endpoint)
        try:
            second.sendall(b"still serving")
            assert second.recv(100) == b"still serving"
        finally:
            second.close()
    assert len(first.reasons) == 1
    assert isinstance(first.reasons[0], ValueError)
    assert "boom in dataReceived" in str(first.reasons[0])
    assert any("dataReceived" in record.getMessage() for record in caplog.records)


def test_exception_in_connection_made_on_the_server_is_logged_and_closes(tcp_endpoint, caplog):
    class BadStart(Recorder):
        def connectionMade(self):
            raise RuntimeError("cannot start")

    with caplog.at_level(logging.ERROR, logger="greenpoint"):
        received, protocol = exchange(tcp_endpoint, BadStart, half_close=False)
    assert received == b""
    assert protocol.reason_types == [RuntimeError]
    assert any("connectionMade" in record.getMessage() for record in caplog.records)


# -- stopping a server --------------------------------------------------------------------


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "inside-dataReceived"])
def test_stop_listening_kills_connections_which_lose_exactly_once(tcp_endpoint, busy):
    class Slow(Recorder):
        def dataReceived(self, data):
            self.received += data
            gevent.sleep(30)  # blocking protocol code: killed by stop_listening

    server = RecordingFactory(Slow)
    port = tcp_endpoint.listen(server)
    sock = raw_client(port, tcp_endpoint)
    try:
        protocol = server.one()
        if busy:
            sock.sendall(b"x")
            wait_until(lambda: protocol.received == b"x")
        port.stop_listening(timeout=0.1)
        assert protocol.closed.wait(5)
        assert read_all(sock, reset_ends=True) == b""
    finally:
        sock.close()
        port.stop_listening()
    gevent.sleep(0.05)  # the sleep is the check: no second connectionLost comes
    assert [type(r) for r in protocol.reasons] == [ConnectionLost]


# -- addresses and socket options ------------------------------------------------------------


def test_get_peer_and_get_host_are_greenpoint_addresses_over_tcp(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        client = client_for(port, tcp_endpoint).connect(Factory.forProtocol(Recorder))
        protocol = server.one()
        server_port = port.get_host().port
        assert client.transport.getPeer() == IPv4Address("127.0.0.1", server_port)
        assert protocol.transport.getHost() == IPv4Address("127.0.0.1", server_port)
        assert protocol.transport.getPeer() == client.transport.getHost()
        assert protocol.addr == protocol.transport.getPeer()
        client.transport.loseConnection()
        assert protocol.closed.wait(5)


def test_get_host_over_unix_is_a_unix_address(tmp_path):
    endpoint = UNIXServerEndpoint(str(tmp_path / "a.sock"))
    server = RecordingFactory(Recorder)
    with endpoint.listen(server) as port:
        client = client_for(port, endpoint).connect(Factory.forProtocol(Recorder))
        protocol = server.one()
        assert protocol.transport.getHost() == UNIXAddress(endpoint.path)
        assert client.transport.getPeer() == UNIXAddress(endpoint.path)
        # TCP options mean nothing on a UNIX socket: no error, reported off.
        protocol.transport.setTcpNoDelay(True)
        protocol.transport.setTcpKeepAlive(True)
        assert protocol.transport.getTcpNoDelay() is False
        client.transport.loseConnection()
        assert protocol.closed.wait(5)


def test_tcp_options_reach_the_socket(tcp_endpoint):
    server = RecordingFactory(Recorder)
    with tcp_endpoint.listen(server) as port:
        client = client_for(port, tcp_endpoint).connect(Factory.forProtocol(Recorder))
        transport = server.one().transport
        transport.setTcpNoDelay(True)
        transport.setTcpKeepAlive(True)
        sock = transport.getHandle()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert transport.getTcpNoDelay() and transport.getTcpKeepAlive()
        transport.setTcpNoDelay(False)
        transport.setTcpKeepAlive(False)
        assert not transport.getTcpNoDelay() and not transport.getTcpKeepAlive()
        client.transport.loseConnection()
        assert server.one().closed.wait(5)


def test_write_buffer_limits_are_validated():
    ours, theirs = socket.socketpair()
    stream = gsocket.socket(fileno=ours.detach())
    try:
        protocol = Recorder()
        handler = gevent.spawn(ProtocolHandler(Factory.forProtocol(lambda: protocol)), stream, None)
        wait_until(lambda: protocol.transport is not None)
        transport = protocol.transport
        transport.set_write_buffer_limits(high=1000, low=10)
        assert (transport.write_high_water, transport.write_low_water) == (1000, 10)
        with pytest.raises(ValueError, match="low"):
            transport.set_write_buffer_limits(high=10, low=100)
        transport.loseConnection()
        handler.join(5)
    finally:
        theirs.close()
        stream.close()


# -- streams that are not gevent sockets (TLS and pipe streams are like this) -----------------


class PlainStream:
    """Socket-like, but not a gevent socket: no setsockopt, no non-blocking send."""

    def __init__(self, sock):
        self._inner = sock
        self.family = sock.family

    def recv(self, size):
        return self._inner.recv(size)

    def send(self, data):
        return self._inner.send(data)

    def sendall(self, data):
        return self._inner.sendall(data)

    def shutdown(self, how):
        self._inner.shutdown(how)

    def close(self):
        self._inner.close()

    def fileno(self):
        return self._inner.fileno()

    def getpeername(self):
        return self._inner.getpeername()

    def getsockname(self):
        return self._inner.getsockname()


class TrySendStream(PlainStream):
    """Offers ``try_send``, the optional non-blocking send that enables the fast path."""

    def __init__(self, sock):
        super().__init__(sock)
        self.try_sends = 0

    def try_send(self, data):
        self.try_sends += 1
        return self._inner.send(data, 0, 0.0)  # gevent: timeout 0 raises, never waits


def tcp_pair():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    client.settimeout(None)
    server, _ = listener.accept()
    listener.close()
    return server, client


def gevent_socket(sock):
    return sock


@pytest.fixture(params=[gevent_socket, PlainStream, TrySendStream])
def wrapped_pair(request):
    ours, theirs = tcp_pair()
    stream = request.param(ours)
    yield stream, theirs
    stream.close()
    theirs.close()


def run_on(stream, protocol_class):
    protocol = protocol_class()
    handler = gevent.spawn(
        ProtocolHandler(Factory.forProtocol(lambda: protocol)), stream, IPv4Address("127.0.0.1", 1)
    )
    wait_until(lambda: protocol.transport is not None, what="connectionMade")
    return protocol, handler


def test_generic_stream_carries_a_big_write_then_lose_connection(wrapped_pair):
    stream, theirs = wrapped_pair
    payload = os.urandom(8 * MiB)
    protocol, handler = run_on(stream, Recorder)
    protocol.transport.write(payload)
    protocol.transport.write(b"tail")
    protocol.transport.loseConnection()
    assert read_all(theirs, pause=0.001) == payload + b"tail"
    handler.join(5)
    assert [type(r) for r in protocol.reasons] == [ConnectionDone]
    if isinstance(stream, TrySendStream):
        assert stream.try_sends >= 1


def test_generic_stream_echo_half_close_and_no_tcp_options(wrapped_pair):
    stream, theirs = wrapped_pair

    class Answer(Recorder):
        def readConnectionLost(self):
            self.transport.write(bytes(self.received[::-1]))
            self.transport.loseConnection()

    protocol, handler = run_on(stream, Answer)
    protocol.transport.setTcpNoDelay(True)
    # Without setsockopt (the wrappers) the TCP options are a quiet no-op.
    assert protocol.transport.getTcpNoDelay() is isinstance(stream, gsocket.socket)
    theirs.sendall(b"abc")
    theirs.shutdown(socket.SHUT_WR)
    assert read_all(theirs) == b"cba"
    handler.join(5)
    assert [type(r) for r in protocol.reasons] == [ConnectionDone]


def test_generic_stream_abort_while_the_writer_is_blocked(wrapped_pair):
    stream, theirs = wrapped_pair
    protocol, handler = run_on(stream, Recorder)
    protocol.transport.write(b"\0" * (32 * MiB))
    gevent.idle()  # every greenlet has run: the writer is blocked in send
    assert protocol.transport.get_write_buffer_size() > 0
    protocol.transport.abortConnection()
    handler.join(5)
    assert handler.dead
    assert len(read_all(theirs, reset_ends=True)) < 32 * MiB
    assert [type(r) for r in protocol.reasons] == [ConnectionLost]
