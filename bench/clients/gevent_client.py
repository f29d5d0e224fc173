"""gevent: ``gevent.socket.create_connection`` (the baseline), or a bare connect.

``--variant create_connection``: what a gevent user writes; it resolves even an IP
literal and tries addresses one after another, each with the full timeout.
``--variant socket``: a gevent socket and ``connect()`` to the sockaddr, no resolver:
the floor for an IP literal.
``--variant pyopenssl --ca CA``: the bare socket, then a pyOpenSSL client handshake by
hand (TLS 1.2 minimum, the peer verified against ``CA``, ``TCP_NODELAY``), waiting on
the hub whenever OpenSSL wants to read or write: the floor for ``tls:``.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent.socket
from _client_common import HOST_NAME, Trials, arguments, fake_getaddrinfo, now
from gevent.socket import wait_read, wait_write

# pyOpenSSL's SSL module, imported by pyopenssl_context() only for the pyopenssl
# variant (the others must not pay its memory footprint), and not per open either: an
# import statement in a function costs microseconds on every call.
SSL: Any = None


def pyopenssl_context(ca: str):
    global SSL
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.load_verify_locations(ca)
    context.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    return context


def pyopenssl_open(context, host: str, port: int):
    """Connect and finish a TLS handshake by hand; the connection and its socket."""
    sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((host, port))
    conn = SSL.Connection(context, sock)
    conn.set_connect_state()
    fd = sock.fileno()
    while True:
        try:
            conn.do_handshake()
            return conn, sock
        except SSL.WantReadError:
            wait_read(fd)
        except SSL.WantWriteError:
            wait_write(fd)


def pyopenssl_recv(conn, fd: int, size: int) -> bytes:
    while True:
        try:
            return conn.recv(size)
        except SSL.WantReadError:
            wait_read(fd)


def main() -> None:
    args = arguments(
        __doc__, [("--variant", {"default": "create_connection"}), ("--ca", {"default": None})]
    )
    trials = Trials(args)
    if args.variant == "pyopenssl":
        context = pyopenssl_context(args.ca)
        for _ in range(trials.total):
            started = now()
            try:
                conn, sock = pyopenssl_open(context, "127.0.0.1", args.port)
                pyopenssl_recv(conn, sock.fileno(), 1)
                ended = now()
                trials.record(started, ended, sock.family)
                sock.close()
            except (OSError, SSL.Error) as exc:
                trials.failed(exc)
        trials.report()
        return
    if args.mode == "happy":
        # create_connection looks getaddrinfo up in its module at call time.
        gevent.socket.getaddrinfo = fake_getaddrinfo(args.port)
        host = HOST_NAME
    else:
        host = "127.0.0.1"
    for _ in range(trials.total):
        started = now()
        try:
            if args.variant == "socket":
                sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.connect((host, args.port))
            else:
                sock = gevent.socket.create_connection((host, args.port), timeout=args.timeout)
            if args.mode == "latency":
                sock.recv(1)
            ended = now()
            trials.record(started, ended, sock.family)
            sock.close()
        except OSError as exc:
            trials.failed(exc)
    trials.report()


if __name__ == "__main__":
    main()
