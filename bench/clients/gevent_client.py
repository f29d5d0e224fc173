"""gevent: ``gevent.socket.create_connection`` (the baseline), or a bare connect.

``--variant create_connection``: what a gevent user writes; it resolves even an IP
literal and tries addresses one after another, each with the full timeout.
``--variant socket``: a gevent socket and ``connect()`` to the sockaddr, no resolver:
the floor for an IP literal.
"""

from __future__ import annotations

import socket

import gevent.socket
from _client_common import HOST_NAME, Trials, arguments, fake_getaddrinfo, now


def main() -> None:
    args = arguments(__doc__, [("--variant", {"default": "create_connection"})])
    trials = Trials(args)
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
