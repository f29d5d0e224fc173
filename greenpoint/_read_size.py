"""How much to ask for in the next read: grow while reads fill it, shrink when not.

A bulk transfer costs less per byte with bigger reads (fewer ``recv`` calls, fewer
loop wake-ups and fewer ``dataReceived`` calls: asyncio and uvloop read 256 KiB at
a time), while small messages gain nothing from them and a large read buffer,
allocated and then shrunk to what arrived, only costs the allocator work. So the
size starts where gevent's usual recv loop is (64 KiB), doubles each time a read
fills it (the peer has more ready than we asked for), up to 256 KiB, and halves
back towards 64 KiB each time a read fills less than half of it.

The size lives in the reading loop's local variable: nothing is kept per
connection, so an idle connection costs no more memory than before (a read
buffer only exists during a ``recv`` that returns data; CPython frees it at once
when the read would block).
"""

from __future__ import annotations

__all__ = ["MAX_READ_SIZE", "MIN_READ_SIZE", "next_read_size"]

MIN_READ_SIZE = 64 * 1024  # where reads start and what they shrink back to
MAX_READ_SIZE = 256 * 1024  # asyncio's and uvloop's read size


def next_read_size(size: int, got: int) -> int:
    """The size of the next read after a read of ``size`` returned ``got`` bytes."""
    if got >= size:
        return min(size * 2, MAX_READ_SIZE)
    if got < size >> 1 and size > MIN_READ_SIZE:
        return size >> 1
    return size
