"""A prototype, not greenpoint: echo dispatched from gevent's loop callbacks.

What "Protocol dispatch without a greenlet switch per message" (issue 21) could
cost at best: one libev read watcher per connection whose callback, run by the hub
itself, reads and calls ``dataReceived`` (here: write back) with no greenlet and no
switch; a write watcher only while the kernel's send buffer is full. No protocol
here may block (that is the hard part of the real design: see bench/README.md).
"""

from __future__ import annotations

import collections
import socket

import gevent
from _common import BACKLOG, HOST, READ_SIZE, arguments, ready, reuse_port_socket


class Connection:
    __slots__ = ("sock", "reader", "writer", "queue", "loop")

    def __init__(self, loop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.queue: collections.deque = collections.deque()
        self.writer = None
        self.reader = loop.io(sock.fileno(), 1)
        self.reader.start(self.readable)

    def readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.queue:
            self.queue.append(data)
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.queue.append(memoryview(data)[sent:])
            self.reader.stop()  # back-pressure: stop reading until flushed
            self.writer = self.loop.io(self.sock.fileno(), 2)
            self.writer.start(self.writable)

    def writable(self) -> None:
        while self.queue:
            data = self.queue[0]
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            if sent < len(data):
                self.queue[0] = memoryview(data)[sent:]
                return
            self.queue.popleft()
        self.writer.close()
        self.writer = None
        self.reader.start(self.readable)

    def close(self) -> None:
        self.reader.close()
        if self.writer is not None:
            self.writer.close()
        self.sock.close()


def main() -> None:
    args = arguments(__doc__)
    loop = gevent.get_hub().loop
    if args.reuse_port:
        listener = reuse_port_socket(args.port)
    else:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, args.port))
        listener.listen(BACKLOG)
    listener.setblocking(False)

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            Connection(loop, sock)

    watcher = loop.io(listener.fileno(), 1)
    watcher.start(accept)
    ready(listener.getsockname()[1])
    while True:
        gevent.sleep(3600)


if __name__ == "__main__":
    main()
