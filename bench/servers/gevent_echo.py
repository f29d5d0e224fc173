"""Raw gevent: ``StreamServer`` with a recv/sendall echo handler. The limit to beat."""

from __future__ import annotations

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready
from gevent.server import StreamServer


def echo(sock, _address):
    recv = sock.recv
    sendall = sock.sendall
    try:
        while True:
            data = recv(READ_SIZE)
            if not data:
                break
            sendall(data)
    except ConnectionError:
        pass


def main() -> None:
    arguments(__doc__)
    server = StreamServer((HOST, 0), echo, backlog=BACKLOG)
    server.start()
    ready(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
