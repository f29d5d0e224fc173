"""Loopback helpers shared by the TCP tests: echo handlers and a black-holed address."""

from __future__ import annotations

import contextlib
import socket as stdsocket

import gevent.socket
from gevent import socket as gsocket


def echo_once(stream, address):
    """A handler that sends back the first chunk it reads."""
    stream.sendall(stream.recv(1024))


@contextlib.contextmanager
def black_hole(family: int, host: str):
    """An address on loopback where connect() hangs: a listener whose queue is full."""
    listener = gsocket.socket(family, stdsocket.SOCK_STREAM)
    fillers = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(2):
            filler = gsocket.socket(family, stdsocket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
        # The first filler's handshake completes and fills the queue; the second hangs.
        gevent.socket.wait_write(fillers[0].fileno(), timeout=5)
        yield address[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
