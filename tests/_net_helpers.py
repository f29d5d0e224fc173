"""Loopback helpers: reading a stream to its end, an echo handler, a black-holed address."""

from __future__ import annotations

import contextlib
import socket as stdsocket

import gevent.socket
from gevent import socket as gsocket


def read_all(sock, pause: float = 0.0, *, reset_ends: bool = False) -> bytes:
    """Read until EOF; ``pause`` between reads keeps the sender queueing.

    A reset raises ``ConnectionResetError``, unless ``reset_ends``: then it ends the
    reading as EOF does (an aborted connection may end either way).
    """
    chunks = []
    while True:
        try:
            data = sock.recv(256 * 1024)
        except ConnectionResetError:
            if not reset_ends:
                raise
            break
        if not data:
            break
        chunks.append(data)
        if pause:
            gevent.sleep(pause)  # a slow reader on purpose: the sender's queue fills
    return b"".join(chunks)


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
