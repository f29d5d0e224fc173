"""ServedSocket: the gevent socket serve() hands its handlers, with fewer system calls."""

from __future__ import annotations

import hashlib
import os
import socket as stdsocket
import subprocess
import sys
import textwrap
from typing import Any

import gevent
import pytest
from gevent import socket as gsocket
from gevent._socketcommon import SocketMixin

from greenpoint import Factory, Protocol, TCP4ServerEndpoint
from greenpoint._served_socket import ServedSocket

pytestmark = pytest.mark.timeout(20)


class CountingRaw:
    """Stands in for a gevent socket's raw socket and notes each call and its outcome."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.calls: list[str] = []

    def _call(self, name: str, *args: Any) -> Any:
        try:
            result = getattr(self.raw, name)(*args)
        except BlockingIOError:
            self.calls.append(f"{name}:EAGAIN")
            raise
        self.calls.append(name)
        return result

    def recv(self, *args: Any) -> Any:
        return self._call("recv", *args)

    def recv_into(self, *args: Any) -> Any:
        return self._call("recv_into", *args)

    def send(self, *args: Any) -> Any:
        return self._call("send", *args)

    def getsockopt(self, *args: Any) -> Any:
        return self._call("getsockopt", *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@pytest.fixture
def pair():
    """A ServedSocket and its plain peer, over a UNIX socket pair."""
    ours, peer = stdsocket.socketpair()
    served = ServedSocket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    peer_g = gsocket.socket(peer.family, peer.type, peer.proto, fileno=peer.detach())
    yield served, peer_g
    served.close()
    peer_g.close()


def counting(served: ServedSocket) -> CountingRaw:
    counter = CountingRaw(served._sock)
    served._sock = counter
    return counter


def uncount(served: ServedSocket, counter: CountingRaw) -> None:
    served._sock = counter.raw


def test_is_a_gevent_socket_without_a_dict(pair):
    served, _ = pair
    assert isinstance(served, gsocket.socket)
    assert not hasattr(served, "__dict__")  # one slot: no per-connection dict


def test_after_a_short_read_the_next_read_waits_before_reading(pair):
    served, peer = pair
    peer.sendall(b"request")
    assert served.recv(100) == b"request"  # short: the socket is now empty
    counter = counting(served)
    try:
        gevent.spawn_later(0.02, peer.sendall, b"next")
        assert served.recv(100) == b"next"
    finally:
        uncount(served, counter)
    assert counter.calls == ["recv"]  # no failed read first


def test_a_plain_gevent_socket_fails_a_read_first(pair):
    # What the test above saves: gevent's recv tries, gets EAGAIN, then waits.
    _, peer = pair
    ours, other = stdsocket.socketpair()
    plain = gsocket.socket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    try:
        counter = CountingRaw(plain._sock)
        plain._sock = counter
        gevent.spawn_later(0.02, other.sendall, b"next")
        assert plain.recv(100) == b"next"
        plain._sock = counter.raw
        assert counter.calls == ["recv:EAGAIN", "recv"]
    finally:
        plain.close()
        other.close()


def test_data_already_there_after_a_short_read_is_read(pair):
    served, peer = pair
    peer.sendall(b"one")
    assert served.recv(100) == b"one"
    peer.sendall(b"two")  # arrives before the next read: readable at once
    with gevent.Timeout(2):
        assert served.recv(100) == b"two"


def test_a_full_read_reads_again_at_once(pair):
    served, peer = pair
    peer.sendall(b"x" * 300)
    assert served.recv(100) == b"x" * 100
    counter = counting(served)
    try:
        assert served.recv(100) == b"x" * 100
        assert served.recv_into(bytearray(100)) == 100
    finally:
        uncount(served, counter)
    assert counter.calls == ["recv", "recv_into"]


def test_recv_into_waits_first_after_a_short_read(pair):
    served, peer = pair
    buffer = bytearray(64)
    peer.sendall(b"abc")
    assert served.recv_into(buffer) == 3
    counter = counting(served)
    try:
        gevent.spawn_later(0.02, peer.sendall, b"defg")
        assert served.recv_into(buffer, 10) == 4
    finally:
        uncount(served, counter)
    assert bytes(buffer[:4]) == b"defg"
    assert counter.calls == ["recv_into"]


def test_end_of_stream_after_a_short_read(pair):
    served, peer = pair
    peer.sendall(b"last")
    assert served.recv(100) == b"last"
    peer.close()
    assert served.recv(100) == b""
    assert served.recv(100) == b""


def test_timeout_still_applies_after_a_short_read(pair):
    served, peer = pair
    peer.sendall(b"a")
    assert served.recv(10) == b"a"
    served.settimeout(0.05)
    with pytest.raises(TimeoutError):
        served.recv(10)


def test_a_non_blocking_socket_fails_rather_than_waits(pair):
    served, peer = pair
    peer.sendall(b"a")
    assert served.recv(10) == b"a"
    served.setblocking(False)
    with pytest.raises(BlockingIOError):
        served.recv(10)
    with pytest.raises(BlockingIOError):
        served.recv_into(bytearray(10))


def test_peeking_leaves_the_data_and_the_state(pair):
    served, peer = pair
    peer.sendall(b"peek")
    assert served.recv(100, stdsocket.MSG_PEEK) == b"peek"
    assert served.recv(100) == b"peek"


def test_closed_socket_fails_as_gevent_does(pair):
    served, peer = pair
    peer.sendall(b"a")
    assert served.recv(10) == b"a"
    served.close()
    with pytest.raises(OSError):
        served.recv(10)
    with pytest.raises(OSError):
        served.sendall(b"x")


def test_close_wakes_a_read_waiting_first(pair):
    served, peer = pair
    peer.sendall(b"a")
    assert served.recv(10) == b"a"
    reader = gevent.spawn(served.recv, 10)
    gevent.sleep(0.01)
    served.close()
    with pytest.raises(OSError):
        reader.get(timeout=2)


def test_sendall_of_what_fits_is_one_send_and_no_getsockopt(pair):
    served, peer = pair
    counter = counting(served)
    try:
        served.sendall(b"hello")
        served.sendall(bytearray(b" world"))
    finally:
        uncount(served, counter)
    assert counter.calls == ["send", "send"]
    assert peer.recv(100) == b"hello world"


def test_sendall_of_more_than_fits_delivers_every_byte_in_order(pair):
    served, peer = pair
    data = os.urandom(8 << 20)  # far beyond a UNIX socket's buffer

    def drain() -> bytes:
        digest = hashlib.sha256()
        left = len(data)
        while left:
            chunk = peer.recv(65536)
            assert chunk
            digest.update(chunk)
            left -= len(chunk)
            gevent.sleep(0)
        return digest.digest()

    reader = gevent.spawn(drain)
    served.sendall(data)
    assert reader.get(timeout=10) == hashlib.sha256(data).digest()


def test_sendall_times_out_on_a_peer_that_never_reads(pair):
    served, _ = pair
    served.settimeout(0.1)
    with pytest.raises(TimeoutError):
        served.sendall(b"x" * (16 << 20))


def test_sendall_rejects_what_gevent_rejects(pair):
    served, _ = pair
    with pytest.raises(TypeError):
        served.sendall("text")  # type: ignore[arg-type]
    served.sendall(b"")  # nothing to send: no error, as gevent


def test_serve_hands_handlers_a_served_socket():
    seen: list[Any] = []

    def handler(stream: Any, _address: Any) -> None:
        seen.append(type(stream))
        data = stream.recv(100)
        stream.sendall(data)
        stream.sendall(stream.recv(100))

    port = TCP4ServerEndpoint(0, interface="127.0.0.1").serve(handler)
    try:
        host = port.get_host()
        with gsocket.create_connection((host.host, host.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"ping"
            client.sendall(b"pong")
            assert client.recv(100) == b"pong"
    finally:
        port.stop_listening(timeout=1)
    assert seen == [ServedSocket]


def test_a_protocol_transport_keeps_the_plain_gevent_socket():
    # The Transport reads and writes the raw socket itself; it gets gevent's own class.
    seen: list[Any] = []

    class Echo(Protocol):
        def connectionMade(self) -> None:
            seen.append(type(self.transport.getHandle()))

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    port = TCP4ServerEndpoint(0, interface="127.0.0.1").listen(Factory.forProtocol(Echo))
    try:
        host = port.get_host()
        with gsocket.create_connection((host.host, host.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"ping"
    finally:
        port.stop_listening(timeout=1)
    assert seen == [gsocket.socket]


def test_a_first_read_with_nothing_there_fails_once_then_waits(pair):
    served, peer = pair
    counter = counting(served)
    try:
        gevent.spawn_later(0.02, peer.sendall, b"late")
        assert served.recv(100) == b"late"
    finally:
        uncount(served, counter)
    assert counter.calls == ["recv:EAGAIN", "recv"]  # as gevent: one failed read


# -- one watcher per socket; close -------------------------------------------------


def write_watcher(served: ServedSocket) -> Any:
    """The write watcher gevent's slot holds (None until one was needed)."""
    return SocketMixin.__dict__["_write_event"].__get__(served)


def fill(sock: Any) -> int:
    """Write into ``sock``'s raw socket until the kernel takes no more; bytes written."""
    total = 0
    while True:
        try:
            total += sock._sock.send(b"x" * 65536)
        except BlockingIOError:
            return total


def test_a_served_socket_has_no_write_watcher_until_a_write_must_wait(pair):
    served, peer = pair
    peer.sendall(b"ping")
    assert served.recv(10) == b"ping"
    served.sendall(b"pong")
    assert peer.recv(10) == b"pong"
    assert served._read_event is not None
    assert write_watcher(served) is None


def test_a_writer_on_a_full_socket_is_woken_when_the_peer_reads(pair):
    served, peer = pair
    written = fill(served)
    writer = gevent.spawn(served.sendall, b"last")
    gevent.sleep(0.01)
    assert not writer.dead  # waiting for room, on the watcher made for it
    assert write_watcher(served) is not None
    received = 0
    while received < written + 4:
        chunk = peer.recv(65536)
        assert chunk
        received += len(chunk)
    writer.get(timeout=2)
    assert received == written + 4


def test_close_while_a_writer_waits_raises_in_the_writer(pair):
    served, peer = pair
    fill(served)
    writer = gevent.spawn(served.sendall, b"more")
    gevent.sleep(0.01)
    served.close()
    with pytest.raises(OSError):
        writer.get(timeout=2)
    assert served._sock.fileno() == -1
    assert peer.recv(10)  # the peer still reads what was written before the close


def test_close_releases_the_descriptor_and_fails_later_calls(pair):
    served, _ = pair
    fd = served.fileno()
    served.close()
    assert served.closed
    assert served.fileno() == -1
    assert "closed" in repr(served)
    with pytest.raises(OSError):
        os.fstat(fd)
    served.close()  # a second close is harmless, as gevent's


def test_close_with_a_makefile_open_waits_for_it_as_gevent_does(pair):
    served, peer = pair
    reader = served.makefile("rb")
    served.close()
    peer.sendall(b"line\n")
    assert reader.readline() == b"line\n"  # the descriptor outlives close()
    reader.close()
    assert served.fileno() == -1


def test_detach_keeps_the_descriptor_open(pair):
    served, peer = pair
    fd = served.detach()
    plain = stdsocket.socket(fileno=fd)
    try:
        peer.sendall(b"still here")
        assert plain.recv(20) == b"still here"
    finally:
        plain.close()


def test_shutdown_before_any_write_watcher(pair):
    served, peer = pair
    served.shutdown(stdsocket.SHUT_WR)
    assert peer.recv(10) == b""  # the peer sees the end of the stream
    assert write_watcher(served) is None
    peer.sendall(b"back")
    assert served.recv(10) == b"back"


def test_ref_covers_a_write_watcher_made_later(pair):
    served, _ = pair
    served.ref = False
    assert served.ref is False
    fill(served)
    assert served._write_event.ref is False
    served.ref = True
    assert served._read_event.ref and served._write_event.ref


def test_dup_gives_a_served_socket_of_its_own(pair):
    served, peer = pair
    copy = served.dup()
    try:
        assert type(copy) is ServedSocket
        assert copy.fileno() != served.fileno()
        peer.sendall(b"x")
        assert copy.recv(1) == b"x"
    finally:
        copy.close()


def test_a_served_socket_made_without_a_descriptor():
    sock = ServedSocket()
    try:
        assert sock.family == stdsocket.AF_INET
        assert sock.type == stdsocket.SOCK_STREAM
        assert sock.timeout is None
    finally:
        sock.close()


def test_a_served_socket_under_gevent_monkey_patching():
    # greenpoint wsgi patches the stdlib: socket.socket is then gevent's class, and
    # ServedSocket must still reach the C socket's methods.
    code = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import socket
        from greenpoint._served_socket import ServedSocket
        a, b = socket.socketpair()
        served = ServedSocket(a.family, a.type, a.proto, fileno=a.detach())
        b.sendall(b"ping")
        assert served.recv(10) == b"ping"
        served.sendall(b"pong")
        assert b.recv(10) == b"pong"
        served.close()
        b.close()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
