"""Loop dispatch reading a bulk sender keeps one read chunk alive at a time.

After a read that filled its buffer the dispatcher reads on by itself
(``CallbackTransport._read_on``). If the chunk just delivered were still alive
while the next read allocates its own, two 256 KiB chunks would be alive and then
none: glibc then finds more than its trim threshold free at the top of its heap,
gives it back to the kernel, and the next reads fault the pages in again (about
21,000 minor faults per GB, 10-15% more CPU per GB: bench/README.md, section 11).
tracemalloc sees the Python allocations the reads make, so the peak between two
deliveries tells how many chunks were alive at once.
"""

from __future__ import annotations

import socket
import threading
import tracemalloc

import gevent
import pytest
from _protocol_helpers import tcp_server

from greenpoint import Factory, Protocol
from greenpoint._callback_transport import CallbackTransport
from greenpoint._read_size import MAX_READ_SIZE

pytestmark = pytest.mark.timeout(30)

TOTAL = 48 * MAX_READ_SIZE  # 12 MiB


class PeakBetweenChunks(Protocol):
    """For each full chunk that follows a full chunk: the traced peak since the
    previous delivery, above what is traced now (the current chunk included)."""

    def __init__(self) -> None:
        self.got = 0
        self.previous_full = False
        self.extra: list[int] = []
        self.done = gevent.event.Event()

    def dataReceived(self, data: bytes) -> None:
        current, peak = tracemalloc.get_traced_memory()
        full = len(data) == MAX_READ_SIZE
        if full and self.previous_full:
            self.extra.append(peak - current)
        self.previous_full = full
        self.got += len(data)
        if self.got >= TOTAL:
            self.done.set()
        tracemalloc.reset_peak()


def send_all(port: int, payload: bytes) -> None:
    # A real thread with a blocking stdlib socket: it keeps the server's receive
    # buffer full, so the server's reads fill 256 KiB.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)


def test_reading_on_keeps_one_chunk_alive():
    protocol = PeakBetweenChunks()
    factory = Factory.forProtocol(lambda: protocol)
    port = tcp_server().listen(factory)
    payload = b"x" * TOTAL  # made before tracing starts: only the server's side is traced
    tracemalloc.start()
    sender = threading.Thread(target=send_all, args=(port.get_host().port, payload))
    try:
        sender.start()
        assert protocol.done.wait(20), f"got {protocol.got} of {TOTAL} bytes"
    finally:
        tracemalloc.stop()
        port.stop_listening()
        sender.join(10)
    assert isinstance(protocol.transport, CallbackTransport)  # loop dispatch, the default
    assert len(protocol.extra) >= 4, f"too few consecutive full reads: {protocol.extra}"
    # One chunk alive at a time: the peak never held a second chunk (the slack is
    # for small objects made between two deliveries).
    assert max(protocol.extra) < MAX_READ_SIZE // 2, protocol.extra
