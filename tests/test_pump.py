"""The byte pump behind connect, listen and relay; and the relay's byte format."""

from __future__ import annotations

import socket

import gevent
import pytest
from _net_helpers import read_all
from _wait_helpers import wait_until
from gevent import socket as gsocket

from greenpoint.cli._pump import Pump
from greenpoint.cli._relay import format_bytes

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def pairs():
    """(left, left_peer, right, right_peer): the pump joins left and right."""
    left, left_peer = gsocket.socketpair()
    right, right_peer = gsocket.socketpair()
    yield left, left_peer, right, right_peer
    for sock in (left, left_peer, right, right_peer):
        sock.close()


def test_copies_both_ways_and_passes_half_closes_on(pairs):
    left, left_peer, right, right_peer = pairs
    pump = Pump(left, right)
    running = gevent.spawn(pump.run)

    left_peer.sendall(b"x" * 300_000)
    left_peer.shutdown(socket.SHUT_WR)
    assert read_all(right_peer) == b"x" * 300_000  # end-of-file passed on
    assert not running.dead  # the other direction is still open

    right_peer.sendall(b"answer after the half-close")
    right_peer.shutdown(socket.SHUT_WR)
    assert read_all(left_peer) == b"answer after the half-close"
    running.get(timeout=5)
    assert (pump.up, pump.down, pump.error) == (300_000, 27, None)
    assert pump.finished is not None and pump.elapsed >= 0


class Resetting:
    """A stream whose reads fail as a reset connection's do."""

    def __init__(self) -> None:
        self.shut = []

    def recv(self, size: int) -> bytes:
        gevent.sleep(0.01)  # the behaviour: a read that waits a moment, then fails
        raise ConnectionResetError(104, "Connection reset by peer")

    def sendall(self, data: bytes) -> None:
        raise AssertionError("nothing to send")

    def shutdown(self, how: int) -> None:
        self.shut.append(how)


def test_an_error_in_one_direction_ends_both(pairs):
    _, _, right, right_peer = pairs
    pump = Pump(Resetting(), right)
    gevent.spawn(pump.run).get(timeout=5)  # although right_peer never closes
    assert isinstance(pump.error, ConnectionResetError)
    assert (pump.up, pump.down) == (0, 0)


def test_killing_the_caller_stops_both_directions(pairs):
    left, left_peer, right, right_peer = pairs
    pump = Pump(left, right)
    running = gevent.spawn(pump.run)
    gevent.idle()  # every greenlet has run: both directions wait for data
    running.kill(timeout=5)
    assert running.dead
    assert pump.finished is not None
    left_peer.sendall(b"after")  # nobody copies it any more
    right_peer.settimeout(0.1)
    with pytest.raises(TimeoutError):
        right_peer.recv(10)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1500, "1.5 kB"),
        (2_500_000, "2.5 MB"),
        (7 * 10**9, "7.0 GB"),
        (3 * 10**15, "3000.0 TB"),
    ],
)
def test_format_bytes(count, text):
    assert format_bytes(count) == text


class OneChunkThenSilence:
    """A source that gives one 5000-byte chunk, then blocks for ever."""

    def __init__(self) -> None:
        self.given = False

    def recv(self, size: int) -> bytes:
        if not self.given:
            self.given = True
            return b"x" * 5000
        gevent.sleep(3600)
        return b""

    def shutdown(self, how: int) -> None:
        pass


class SlowSink:
    """A sink that takes 1000 bytes, then blocks (a reader that stopped reading)."""

    def __init__(self) -> None:
        self.taken = 0

    def send(self, data) -> int:
        if self.taken:
            gevent.sleep(3600)
        self.taken = min(len(data), 1000)
        return self.taken

    def recv(self, size: int) -> bytes:
        gevent.sleep(3600)
        return b""

    def shutdown(self, how: int) -> None:
        pass


def test_a_pump_killed_mid_chunk_counts_what_really_left():
    sink = SlowSink()
    pump = Pump(OneChunkThenSilence(), sink)
    running = gevent.spawn(pump.run)
    wait_until(lambda: sink.taken, what="the sink to take its 1000 bytes")
    running.kill()
    assert pump.up == 1000  # not 0 (the chunk not yet all sent), not 5000
