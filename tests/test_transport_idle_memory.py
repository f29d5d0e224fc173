"""An idle greenlet-dispatched connection keeps no read chunk alive.

The greenlet ``Transport`` (``listen(dispatch="greenlet")``, client ``connect()``)
reads up to 256 KiB at a time after a bulk burst (greenpoint._read_size). If its read
loop kept the chunk it last delivered while it waits for the next read, every idle
connection would hold up to that much until its peer sends again (the loop-dispatch
transport had the same fault, fixed the same way: bench/README.md, section 11).
tracemalloc tells what is still alive of what the transport's own lines allocated.
"""

from __future__ import annotations

import tracemalloc

import pytest
from _protocol_helpers import raw_client, tcp_server
from _wait_helpers import wait_until

from greenpoint import Factory, Protocol, _transport
from greenpoint._transport import Transport

pytestmark = pytest.mark.timeout(30)

KiB = 1024
BURST = 4 * 1024 * KiB  # enough full reads to reach the largest read size
LAST = 48 * KiB  # one loopback segment: normally one read


class Counting(Protocol):
    """Counts what it gets and keeps none of it."""

    def __init__(self) -> None:
        self.got = 0
        self.last = 0

    def dataReceived(self, data: bytes) -> None:
        self.got += len(data)
        self.last = len(data)


def chunks_alive_from_transport_lines() -> list[int]:
    """Sizes of the blocks of 8 KiB or more still allocated by lines of
    greenpoint/_transport.py: read chunks. Smaller blocks are the parked read's own: on Python 3.10,
    greenlet's copy of the reader's C stack (~5 KiB), made when it switched away."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, _transport.__file__)]
    )
    return [trace.size for trace in snapshot.traces if trace.size >= 8 * KiB]


def test_an_idle_greenlet_transport_keeps_no_read_chunk_after_a_burst():
    protocol = Counting()
    endpoint = tcp_server()
    factory = Factory.forProtocol(lambda: protocol)
    with (
        endpoint.listen(factory, dispatch="greenlet") as port,
        raw_client(port, endpoint) as client,
    ):
        wait_until(lambda: protocol.transport is not None)
        assert isinstance(protocol.transport, Transport)
        tracemalloc.start()
        try:
            client.sendall(b"x" * BURST)
            wait_until(lambda: protocol.got == BURST, timeout=20)
            client.sendall(b"y" * LAST)
            wait_until(lambda: protocol.got == BURST + LAST, timeout=20)
            # The reader is back waiting for the next read: the connection is idle.
            wait_until(lambda: protocol.transport._in_recv)
            kept = chunks_alive_from_transport_lines()
        finally:
            tracemalloc.stop()
    # Without the fix the last chunk (protocol.last bytes) stays alive: it must be
    # big enough to be seen.
    assert protocol.last >= 8 * KiB, f"the last read was only {protocol.last} bytes"
    assert kept == [], f"blocks alive: {kept} (last chunk: {protocol.last} bytes)"
