"""Raw gevent: ``StreamServer`` with a recv/sendall echo handler. The limit to beat."""

from __future__ import annotations

import functools
import socket

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready, reuse_port_socket
from gevent import socket as gsocket
from gevent.server import StreamServer

NODELAY_FLAG = ("--nodelay", {"action": "store_true", "help": "TCP_NODELAY on accepted sockets"})


def echo(sock, _address, read_size=READ_SIZE):
    recv = sock.recv
    sendall = sock.sendall
    try:
        while True:
            data = recv(read_size)
            if not data:
                break
            sendall(data)
    except ConnectionError:
        pass


def main() -> None:
    args = arguments(__doc__, [NODELAY_FLAG])
    handler = functools.partial(echo, read_size=args.read_size)
    if args.reuse_port:
        # SO_REUSEPORT must be set before bind, which StreamServer does itself.
        plain = reuse_port_socket(args.port)
        listener = gsocket.socket(plain.family, plain.type, fileno=plain.detach())
        server = StreamServer(listener, handler)
    else:
        server = StreamServer((HOST, args.port), handler, backlog=BACKLOG)
    server.start()
    if args.nodelay:
        # Accepted sockets inherit it (Linux), as on greenpoint's tcp: listeners.
        server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ready(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
