"""PipeStream: a socket-like stream over two descriptors, cooperative with gevent."""

from __future__ import annotations

import errno
import os
import socket

import gevent
import pytest

from greenpoint._address import PipeAddress
from greenpoint._pipe_stream import PipeStream

pytestmark = pytest.mark.timeout(20)


class Peer:
    """The other ends of the two pipes under a PipeStream, as raw blocking fds."""

    def __init__(self) -> None:
        self.stream_read, self.write_fd = os.pipe()  # peer writes -> stream reads
        self.read_fd, self.stream_write = os.pipe()  # stream writes -> peer reads
        self.stream = PipeStream(self.stream_read, self.stream_write, peer=PipeAddress("the peer"))

    def read_all(self) -> bytes:
        chunks = []
        while True:
            gevent.socket.wait_read(self.read_fd)
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def close(self) -> None:
        self.stream.close()
        for fd in (self.write_fd, self.read_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def peer():
    pair = Peer()
    yield pair
    pair.close()


def test_bytes_flow_both_ways(peer):
    os.write(peer.write_fd, b"ping")
    assert peer.stream.recv(100) == b"ping"
    peer.stream.sendall(b"pong")
    assert os.read(peer.read_fd, 100) == b"pong"


def test_recv_into_fills_the_buffer_up_to_nbytes(peer):
    os.write(peer.write_fd, b"abcdef")
    buffer = bytearray(10)
    assert peer.stream.recv_into(buffer, 4) == 4
    assert buffer[:4] == b"abcd"
    assert peer.stream.recv_into(buffer) == 2
    assert buffer[:2] == b"ef"


def test_recv_returns_empty_at_end_of_file(peer):
    os.write(peer.write_fd, b"last")
    os.close(peer.write_fd)
    assert peer.stream.recv(100) == b"last"
    assert peer.stream.recv(100) == b""
    assert peer.stream.recv_into(bytearray(4)) == 0


def test_recv_blocks_only_the_calling_greenlet(peer):
    reader = gevent.spawn(peer.stream.recv, 100)
    ticks = []
    # The sleeps are the behaviour: time passes for others while the reader waits.
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(5)])
    ticker.join(2)
    assert len(ticks) == 5 and not reader.ready()
    os.write(peer.write_fd, b"late")
    assert reader.get(timeout=2) == b"late"


def test_send_returns_a_partial_count_when_the_pipe_fills(peer):
    data = b"x" * (4 * 1024 * 1024)  # far more than a pipe buffer (64 KiB on Linux)
    sent = peer.stream.send(data)
    assert 0 < sent < len(data)


def test_sendall_waits_for_the_reader_and_delivers_everything(peer):
    data = os.urandom(3 * 1024 * 1024)
    reader = gevent.spawn(peer.read_all)
    peer.stream.sendall(data)
    peer.stream.shutdown(socket.SHUT_WR)
    assert reader.get(timeout=10) == data


def test_shutdown_wr_gives_the_peer_end_of_file_and_keeps_reading(peer):
    peer.stream.sendall(b"bye")
    peer.stream.shutdown(socket.SHUT_WR)
    assert os.read(peer.read_fd, 10) == b"bye"
    assert os.read(peer.read_fd, 10) == b""  # would block forever if still open
    os.write(peer.write_fd, b"still here")
    assert peer.stream.recv(100) == b"still here"
    with pytest.raises(BrokenPipeError):
        peer.stream.send(b"more")


def test_shutdown_rd_makes_a_writing_peer_see_epipe(peer):
    peer.stream.shutdown(socket.SHUT_RD)
    assert peer.stream.recv(10) == b""
    assert peer.stream.fileno() == -1
    with pytest.raises(BrokenPipeError):
        os.write(peer.write_fd, b"nobody reads this")


def test_shutdown_rd_from_another_greenlet_gives_a_blocked_reader_end_of_file(peer):
    reader = gevent.spawn(peer.stream.recv, 100)
    gevent.idle()  # every greenlet has run: the reader is blocked in recv
    peer.stream.shutdown(socket.SHUT_RD)
    assert reader.get(timeout=2) == b""


def test_close_from_another_greenlet_wakes_a_blocked_reader_with_ebadf(peer):
    reader = gevent.spawn(peer.stream.recv, 100)
    gevent.idle()  # every greenlet has run: the reader is blocked in recv
    peer.stream.close()
    with pytest.raises(OSError) as caught:
        reader.get(timeout=2)
    assert caught.value.errno == errno.EBADF


def test_close_from_another_greenlet_wakes_a_blocked_writer(peer):
    writer = gevent.spawn(peer.stream.sendall, b"y" * (1024 * 1024))
    gevent.idle()  # every greenlet has run: the writer is blocked, the pipe full
    assert not writer.ready()
    peer.stream.close()
    with pytest.raises(OSError) as caught:
        writer.get(timeout=2)
    assert caught.value.errno == errno.EBADF


def test_use_after_close_raises_ebadf_and_close_is_idempotent(peer):
    peer.stream.close()
    peer.stream.close()
    assert peer.stream.closed
    for call in (lambda: peer.stream.recv(1), lambda: peer.stream.send(b"x")):
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == errno.EBADF


def test_close_closes_both_descriptors(peer):
    read_fd, write_fd = peer.stream_read, peer.stream_write
    peer.stream.close()
    gevent.sleep(0)  # the close is deferred until the watchers are released
    for fd in (read_fd, write_fd):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_settimeout_bounds_each_wait(peer):
    peer.stream.settimeout(0.05)
    assert peer.stream.gettimeout() == 0.05
    with pytest.raises(socket.timeout):
        peer.stream.recv(10)
    os.write(peer.write_fd, b"ok")
    assert peer.stream.recv(10) == b"ok"


def test_non_blocking_mode_raises_blocking_io_error(peer):
    peer.stream.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.stream.recv(10)


def test_gevent_timeout_interrupts_a_read_and_the_stream_stays_usable(peer):
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
        peer.stream.recv(10)
    os.write(peer.write_fd, b"after")
    assert peer.stream.recv(10) == b"after"


def test_addresses(peer):
    assert peer.stream.getPeer() == PipeAddress("the peer")
    assert peer.stream.getHost() == PipeAddress()
    assert peer.stream.getpeername() == "the peer"
    assert peer.stream.family is None


def test_makefile_reads_lines_and_writes(peer):
    os.write(peer.write_fd, b"one\ntwo\n")
    with peer.stream.makefile("rb") as reader:
        assert reader.readline() == b"one\n"
    with peer.stream.makefile("w", encoding="utf-8") as writer:
        writer.write("text\n")
    assert os.read(peer.read_fd, 100) == b"text\n"
    assert not peer.stream.closed  # closing a file leaves the stream open


def test_context_manager_closes(peer):
    with peer.stream as stream:
        stream.sendall(b"x")
    assert peer.stream.closed


def test_original_blocking_mode_is_restored_before_closing():
    # A descriptor shared with another process (a terminal) must not be left
    # non-blocking: check on a dup, which shares the open file description.
    read_fd, write_fd = os.pipe()
    witness = os.dup(read_fd)
    other_read, other_write = os.pipe()
    try:
        stream = PipeStream(read_fd, other_write)
        assert not os.get_blocking(witness)
        stream.close()
        gevent.sleep(0)
        assert os.get_blocking(witness)
    finally:
        for fd in (witness, write_fd, other_read):
            os.close(fd)


def test_same_descriptor_twice_is_refused():
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(ValueError, match="two distinct"):
            PipeStream(read_fd, read_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_regular_file_as_the_read_side(tmp_path):
    path = tmp_path / "input"
    path.write_bytes(b"from a file")
    file_fd = os.open(path, os.O_RDONLY)
    read_fd, write_fd = os.pipe()
    with PipeStream(file_fd, write_fd) as stream:
        assert stream.recv(100) == b"from a file"
        assert stream.recv(100) == b""
        stream.sendall(b"to a pipe")
        assert os.read(read_fd, 100) == b"to a pipe"
    os.close(read_fd)


def test_shutdown_wr_on_a_shared_socket_sends_fin():
    # inetd hands one socket as both stdin and stdout; our write descriptor is then
    # one of two for the same socket, and closing it alone would not end the stream.
    ours, theirs = socket.socketpair()
    read_fd, write_fd = os.dup(ours.fileno()), os.dup(ours.fileno())
    ours.close()
    try:
        with PipeStream(read_fd, write_fd) as stream:
            stream.sendall(b"done")
            stream.shutdown(socket.SHUT_WR)
            theirs.settimeout(5)
            assert theirs.recv(10) == b"done"
            assert theirs.recv(10) == b""
            theirs.sendall(b"reply")
            assert stream.recv(10) == b"reply"
    finally:
        theirs.close()
