"""Bare gevent.pywsgi: ``WSGIServer`` on one listening socket, pre-forked N times.

The reference a WSGI server on gevent cannot beat by much: no supervisor logic, no
access log, no graceful stop. ``--port P --workers N [--nodelay]``; SIGTERM stops
every process. ``--nodelay`` sets TCP_NODELAY on each accepted connection (pywsgi
does not), which keep-alive responses need to avoid the delayed-ACK stall.
"""

from __future__ import annotations

import argparse
import os
import signal

import gevent
from gevent import socket
from gevent.pywsgi import WSGIHandler, WSGIServer
from wsgi_app import application


class NoDelayHandler(WSGIHandler):
    def handle(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--nodelay", action="store_true")
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    children = []
    for _ in range(args.workers - 1):
        pid = gevent.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)

    def stop(*_: object) -> None:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    handler = NoDelayHandler if args.nodelay else WSGIHandler
    WSGIServer(listener, application, log=None, handler_class=handler).serve_forever()


if __name__ == "__main__":
    main()
