"""Raw gevent: ``StreamServer`` with a recv/sendall echo handler. The limit to beat."""

from __future__ import annotations

import functools

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready
from gevent.server import StreamServer


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
    args = arguments(__doc__)
    handler = functools.partial(echo, read_size=args.read_size)
    server = StreamServer((HOST, 0), handler, backlog=BACKLOG)
    server.start()
    ready(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
