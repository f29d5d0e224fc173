"""Raw gevent + pyOpenSSL, written by hand: the TLS limit to beat.

``StreamServer`` accepts; each handler wraps the gevent socket's file descriptor in an
``OpenSSL.SSL.Connection`` (the fd is already non-blocking) and waits on the gevent hub
whenever OpenSSL says it wants to read or write. Same settings a careful user would pick
and greenpoint promises: TLS 1.2 minimum, the certificate chain and key from PEM files,
TCP_NODELAY on each connection, and close_notify before closing (as Twisted, asyncio
and greenpoint send it).
"""

from __future__ import annotations

import socket

from _common import BACKLOG, HOST, READ_SIZE, arguments, ready
from gevent.server import StreamServer
from gevent.socket import wait_read, wait_write
from OpenSSL import SSL


def make_context(cert: str, key: str) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate_chain_file(cert)
    context.use_privatekey_file(key)
    context.check_privatekey()
    return context


def make_handler(context: SSL.Context):
    def handle(sock, _address):
        # A handshake is several small writes in a row: without this, Nagle holds the
        # last one until the peer's delayed ACK (~40 ms) and the handshake rate collapses.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = sock.fileno()
        conn = SSL.Connection(context, sock)
        conn.set_accept_state()
        try:
            while True:
                try:
                    conn.do_handshake()
                    break
                except SSL.WantReadError:
                    wait_read(fd)
                except SSL.WantWriteError:
                    wait_write(fd)
            while True:
                try:
                    data = conn.recv(READ_SIZE)
                except SSL.WantReadError:
                    wait_read(fd)
                    continue
                except SSL.ZeroReturnError:
                    break
                view = memoryview(data)
                while view:
                    try:
                        view = view[conn.send(view) :]
                    except SSL.WantWriteError:
                        wait_write(fd)
                    except SSL.WantReadError:
                        wait_read(fd)
        except (SSL.SysCallError, SSL.Error, ConnectionError):
            pass
        finally:
            # RFC 8446 §6.1: send close_notify before closing; best effort, never wait.
            try:
                conn.shutdown()
            except (SSL.Error, OSError):
                pass

    return handle


def main() -> None:
    args = arguments(__doc__)
    if not args.tls:
        raise SystemExit("gevent_pyopenssl.py needs --tls CERT KEY")
    server = StreamServer((HOST, 0), make_handler(make_context(*args.tls)), backlog=BACKLOG)
    server.start()
    ready(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
