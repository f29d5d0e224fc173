"""The adaptive read size: the pure rule, and the Transport and Pump following it."""

from __future__ import annotations

import hashlib
import os
import socket

import gevent
import pytest
from gevent import socket as gsocket

from greenpoint import Factory, IPv4Address, Protocol
from greenpoint._connect import ProtocolHandler
from greenpoint._read_size import MAX_READ_SIZE, MIN_READ_SIZE, next_read_size
from greenpoint.cli._pump import Pump

pytestmark = pytest.mark.timeout(20)

KiB = 1024


def test_full_reads_double_the_size_up_to_the_maximum():
    sizes = [MIN_READ_SIZE]
    for _ in range(4):
        sizes.append(next_read_size(sizes[-1], sizes[-1]))
    assert sizes == [64 * KiB, 128 * KiB, 256 * KiB, 256 * KiB, 256 * KiB]
    assert 256 * KiB == MAX_READ_SIZE


def test_reads_under_half_full_halve_it_down_to_the_minimum():
    sizes = [MAX_READ_SIZE]
    for _ in range(4):
        sizes.append(next_read_size(sizes[-1], 100))
    assert sizes == [256 * KiB, 128 * KiB, 64 * KiB, 64 * KiB, 64 * KiB]


def test_reads_at_least_half_full_keep_the_size():
    assert next_read_size(256 * KiB, 128 * KiB) == 256 * KiB
    assert next_read_size(256 * KiB, 256 * KiB - 1) == 256 * KiB
    assert next_read_size(128 * KiB, 64 * KiB) == 128 * KiB
    assert next_read_size(64 * KiB, 1) == 64 * KiB


class ScriptedStream:
    """A stream whose recv hands out ``payload`` in pieces no bigger than ``pieces``
    says (``None``: as much as asked), and records every size it was asked for."""

    family = socket.AF_INET

    def __init__(self, payload: bytes, pieces: list[int | None]):
        self._payload = memoryview(payload)
        self._pieces = list(pieces)
        self.asked: list[int] = []
        self.sent = bytearray()
        self.closed = False

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        limit = self._pieces.pop(0) if self._pieces else None
        take = size if limit is None else min(size, limit)
        data, self._payload = self._payload[:take].tobytes(), self._payload[take:]
        return data

    def send(self, data) -> int:
        self.sent += data
        return len(data)

    sendall = send

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def getpeername(self):
        return ("127.0.0.1", 1)

    def getsockname(self):
        return ("127.0.0.1", 2)


class Collect(Protocol):
    def __init__(self):
        self.received = bytearray()
        self.transport_vars: set[str] = set()

    def dataReceived(self, data):
        self.received += data
        self.transport_vars = set(vars(self.transport))


def bulk_then_small(bulk: int, small: int) -> tuple[bytes, list[int | None]]:
    """A payload read first in full reads (``bulk`` of them), then in 100-byte pieces."""
    total = sum(64 * KiB * 2 ** min(i, 2) for i in range(bulk)) + small * 100
    return os.urandom(total), [None] * bulk + [100] * small


def test_transport_grows_on_full_reads_and_shrinks_back_delivering_every_byte():
    payload, pieces = bulk_then_small(bulk=5, small=4)
    stream = ScriptedStream(payload, pieces)
    protocol = Collect()
    ProtocolHandler(Factory.forProtocol(lambda: protocol))(stream, IPv4Address("127.0.0.1", 1))
    assert bytes(protocol.received) == payload
    k = KiB
    assert stream.asked[:5] == [64 * k, 128 * k, 256 * k, 256 * k, 256 * k]
    # Small reads: back down by halves, then it stays at the minimum (the last ask
    # is the read that met the end of the stream).
    assert stream.asked[5:] == [256 * k, 128 * k, 64 * k, 64 * k, 64 * k]
    assert stream.closed


def test_transport_keeps_no_read_size_per_connection():
    # Memory per idle connection must not grow: the size lives in the read loop.
    plain = Collect()
    stream = ScriptedStream(b"x" * 100, [])
    ProtocolHandler(Factory.forProtocol(lambda: plain))(stream, IPv4Address("127.0.0.1", 1))
    payload, pieces = bulk_then_small(bulk=4, small=0)
    bulk = Collect()
    stream = ScriptedStream(payload, pieces)
    ProtocolHandler(Factory.forProtocol(lambda: bulk))(stream, IPv4Address("127.0.0.1", 1))
    assert bulk.transport_vars == plain.transport_vars


def test_pump_grows_on_full_reads_and_shrinks_back_delivering_every_byte():
    payload, pieces = bulk_then_small(bulk=4, small=3)
    source = ScriptedStream(payload, pieces)
    sink = ScriptedStream(b"", [])
    Pump(source, sink).run()
    assert bytes(sink.sent) == payload
    k = KiB
    assert source.asked == [64 * k, 128 * k, 256 * k, 256 * k, 256 * k, 128 * k, 64 * k, 64 * k]


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@pytest.mark.parametrize("size", [1, 64 * KiB - 1, 64 * KiB + 1, 256 * KiB + 1, 3 * 1024 * KiB])
def test_echo_over_loopback_returns_every_byte_whatever_the_read_sizes(size):
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    handler = gevent.spawn(
        ProtocolHandler(Factory.forProtocol(Echo)), server, IPv4Address("127.0.0.1", 1)
    )
    payload = os.urandom(size)
    try:
        sender = gevent.spawn(client.sendall, payload)
        digest, got = hashlib.sha256(), 0
        while got < size:
            chunk = client.recv(1024 * KiB)
            assert chunk, f"echo ended after {got} of {size} bytes"
            digest.update(chunk)
            got += len(chunk)
        sender.get(timeout=10)
        assert got == size
        assert digest.digest() == hashlib.sha256(payload).digest()
    finally:
        client.close()
        handler.join(5)
        server.close()


def test_many_small_exchanges_after_drained_reads_all_arrive_and_the_close_is_seen():
    # Each request empties the socket, so the reader waits for readability before
    # its next recv: every exchange must still be answered, and the peer's close seen.
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    handler = gevent.spawn(
        ProtocolHandler(Factory.forProtocol(Echo)), server, IPv4Address("127.0.0.1", 1)
    )
    try:
        for index in range(200):
            request = index.to_bytes(2, "big") * 256
            client.sendall(request)
            answer = b""
            while len(answer) < len(request):
                chunk = client.recv(4096)
                assert chunk, f"closed after {index} exchanges"
                answer += chunk
            assert answer == request
    finally:
        client.close()
    handler.join(5)
    assert handler.dead
    server.close()


class ClosesItsHandle(Protocol):
    def __init__(self):
        self.reasons = []

    def dataReceived(self, data):
        self.transport.getHandle().close()  # under the reader, between two reads

    def connectionLost(self, reason):
        self.reasons.append(reason)


def test_a_protocol_that_closes_its_socket_between_reads_gets_connection_lost():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    protocol = ClosesItsHandle()
    handler = gevent.spawn(
        ProtocolHandler(Factory.forProtocol(lambda: protocol)), server, IPv4Address("127.0.0.1", 1)
    )
    try:
        client.sendall(b"x")  # a small read: the reader would wait before the next
        handler.join(5)
        assert handler.dead and handler.exception is None
        assert [type(r).__name__ for r in protocol.reasons] == ["ConnectionLost"]
    finally:
        client.close()
        server.close()
